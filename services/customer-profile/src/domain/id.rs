//! ID documents: types, normalisation for matching, and the PRC resident ID
//! (GB 11643) with its ISO 7064 MOD 11-2 check character.

/// Kind of ID document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdType {
    /// PRC resident identity card.
    ResidentId,
    /// Passport.
    Passport,
    /// Mainland travel permit for Hong Kong and Macao residents.
    HkMacaoPermit,
    /// Mainland travel permit for Taiwan residents.
    TaiwanPermit,
    /// Foreign permanent resident ID card.
    ForeignPermanentResidentId,
    /// Military officer's ID.
    MilitaryId,
    /// Unified social credit code (companies).
    UnifiedSocialCreditCode,
    /// Organisation code (companies, legacy).
    OrganizationCode,
    /// Business licence number (companies, legacy).
    BusinessLicense,
    /// Defined inconsistently by source systems; never merged.
    Other,
}

stored_codes!(IdType {
    ResidentId => "RESIDENT_ID",
    Passport => "PASSPORT",
    HkMacaoPermit => "HK_MACAO_PERMIT",
    TaiwanPermit => "TAIWAN_PERMIT",
    ForeignPermanentResidentId => "FOREIGN_PERMANENT_RESIDENT_ID",
    MilitaryId => "MILITARY_ID",
    UnifiedSocialCreditCode => "UNIFIED_SOCIAL_CREDIT_CODE",
    OrganizationCode => "ORGANIZATION_CODE",
    BusinessLicense => "BUSINESS_LICENSE",
    Other => "OTHER",
});

impl IdType {
    /// Whether customers with this ID type may be merged; the bank never merges "other".
    pub fn is_mergeable(self) -> bool {
        self != IdType::Other
    }

    /// Whether the type identifies a company.
    pub fn is_corporate(self) -> bool {
        matches!(self, IdType::UnifiedSocialCreditCode | IdType::OrganizationCode | IdType::BusinessLicense)
    }
}

/// Gender as recorded or as encoded in a resident ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Not known.
    Unknown,
}

impl Gender {
    /// `M`, `F` or `U`.
    pub fn code(self) -> &'static str {
        match self {
            Gender::Male => "M",
            Gender::Female => "F",
            Gender::Unknown => "U",
        }
    }

    /// Parses `M`/`F`/`U` or `MALE`/`FEMALE`/`UNKNOWN`, case-insensitive.
    pub fn from_code(code: &str) -> Option<Gender> {
        match code.trim().to_ascii_uppercase().as_str() {
            "M" | "MALE" => Some(Gender::Male),
            "F" | "FEMALE" => Some(Gender::Female),
            "U" | "UNKNOWN" => Some(Gender::Unknown),
            _ => None,
        }
    }
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day, 1..=31.
    pub day: u8,
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A date, if it exists in the calendar.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        ((1..=9999).contains(&year) && day >= 1 && day <= days_in_month(year, month)).then_some(Date {
            year,
            month,
            day,
        })
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse_iso(s: &str) -> Option<Date> {
        let mut parts = s.trim().splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// `YYYY-MM-DD`.
    pub fn to_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Full-width ASCII (U+FF01–U+FF5E) to half-width, ideographic space to a space.
pub fn to_half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// The form of an ID number used for matching: half-width, no whitespace, ASCII
/// letters upper-cased (a lower-case check `x` becomes `X`); other characters, such
/// as Chinese characters, are kept.
pub fn normalize_id_number(raw: &str) -> String {
    raw.chars().map(to_half_width).filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The administrative division code of a resident ID (its first 6 digits, the place
/// of household registration), e.g. `110105`; `None` for other ID types and for a
/// number that is not 15 or 18 characters.
pub fn resident_id_region(id_type: IdType, raw: &str) -> Option<String> {
    let n = normalize_id_number(raw);
    let region = n.get(..6)?;
    (id_type == IdType::ResidentId && matches!(n.len(), 15 | 18) && region.bytes().all(|b| b.is_ascii_digit()))
        .then(|| region.to_string())
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character of a resident ID's first 17 digits (ISO 7064 MOD 11-2).
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

/// The 18-character form of a 15-digit resident ID: "19" before the two-digit year and
/// the check character appended.
pub fn resident_id_15_to_18(id15: &str) -> Option<String> {
    if id15.len() != 15 || !id15.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first17 = format!("{}19{}", &id15[..6], &id15[6..]);
    let check = resident_id_check_char(&first17)?;
    Some(format!("{first17}{check}"))
}

/// The key an ID number is matched by: `None` for type "other" (never merged) or an
/// empty number; a 15-digit resident ID is matched as its 18-digit form; a resident ID
/// of any other length is matched as it is (a data-entry error is not "corrected").
pub fn match_key(id_type: IdType, raw_number: &str) -> Option<String> {
    if !id_type.is_mergeable() {
        return None;
    }
    let normalized = normalize_id_number(raw_number);
    if normalized.is_empty() {
        return None;
    }
    if id_type == IdType::ResidentId
        && let Some(id18) = resident_id_15_to_18(&normalized)
    {
        return Some(id18);
    }
    Some(normalized)
}

/// What a resident ID encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResidentIdInfo {
    /// Birth date.
    pub birth_date: Date,
    /// Gender (odd sequence = male).
    pub gender: Gender,
}

/// Why a resident ID is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResidentIdProblem {
    /// Characters other than digits (and a final X).
    NotDigits,
    /// Neither 15 nor 18 characters.
    BadLength(usize),
    /// The encoded birth date does not exist or is out of range.
    BadBirthDate,
    /// The check character does not match.
    BadCheckChar {
        /// The check character the first 17 digits call for.
        expected: char,
        /// The one given.
        found: char,
    },
}

impl std::fmt::Display for ResidentIdProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResidentIdProblem::NotDigits => f.write_str("a resident ID holds digits only (and a final X)"),
            ResidentIdProblem::BadLength(n) => write!(f, "a resident ID has 15 or 18 characters, not {n}"),
            ResidentIdProblem::BadBirthDate => f.write_str("the birth date in the resident ID does not exist"),
            ResidentIdProblem::BadCheckChar { expected, found } => {
                write!(f, "check character is {found} but the first 17 digits call for {expected}")
            }
        }
    }
}

/// Checks a normalised resident ID and reads its birth date and gender.
pub fn inspect_resident_id(normalized: &str) -> Result<ResidentIdInfo, ResidentIdProblem> {
    let n = normalized.chars().count();
    let (date_digits, seq_digit) = match n {
        18 => {
            // Split by bytes below: 18 characters are 18 bytes only when all are ASCII.
            if !normalized.is_ascii() {
                return Err(ResidentIdProblem::NotDigits);
            }
            let (body, last) = normalized.split_at(17);
            if !body.bytes().all(|b| b.is_ascii_digit()) || !(last == "X" || last.bytes().all(|b| b.is_ascii_digit())) {
                return Err(ResidentIdProblem::NotDigits);
            }
            (normalized[6..14].to_string(), normalized.as_bytes()[16])
        }
        15 => {
            if !normalized.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ResidentIdProblem::NotDigits);
            }
            (format!("19{}", &normalized[6..12]), normalized.as_bytes()[14])
        }
        _ => return Err(ResidentIdProblem::BadLength(n)),
    };
    let year: i32 = date_digits[0..4].parse().map_err(|_| ResidentIdProblem::BadBirthDate)?;
    let month: u8 = date_digits[4..6].parse().map_err(|_| ResidentIdProblem::BadBirthDate)?;
    let day: u8 = date_digits[6..8].parse().map_err(|_| ResidentIdProblem::BadBirthDate)?;
    let birth_date =
        Date::new(year, month, day).filter(|_| (1900..=2100).contains(&year)).ok_or(ResidentIdProblem::BadBirthDate)?;
    if n == 18 {
        let expected = resident_id_check_char(&normalized[..17]).ok_or(ResidentIdProblem::NotDigits)?;
        let found = normalized.chars().last().unwrap_or(' ');
        if expected != found {
            return Err(ResidentIdProblem::BadCheckChar { expected, found });
        }
    }
    let gender = if (seq_digit - b'0') % 2 == 1 { Gender::Male } else { Gender::Female };
    Ok(ResidentIdInfo { birth_date, gender })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_the_first_six_digits_of_a_resident_id_only() {
        let cases = [
            (IdType::ResidentId, "11010519491231002X", Some("110105")),
            (IdType::ResidentId, " 440524 800101001 ", Some("440524")),
            (IdType::ResidentId, "４４０５２４８００１０１００１", Some("440524")),
            (IdType::ResidentId, "1101051949", None),
            (IdType::ResidentId, "A1010519491231002X", None),
            (IdType::Passport, "11010519491231002X", None),
        ];
        for (id_type, raw, expected) in cases {
            assert_eq!(resident_id_region(id_type, raw).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn check_characters_follow_iso_7064_mod_11_2() {
        for (first17, check) in [
            ("11010519491231002", 'X'),
            ("11010519800101001", '6'),
            ("44052418800101001", '4'),
            ("34052419800101001", 'X'),
        ] {
            assert_eq!(resident_id_check_char(first17), Some(check), "{first17}");
        }
        assert_eq!(resident_id_check_char("1101051949123100"), None);
        assert_eq!(resident_id_check_char("1101051949123100A"), None);
    }

    #[test]
    fn fifteen_digit_ids_convert_to_their_eighteen_character_form() {
        for (id15, id18) in [("110105491231002", "11010519491231002X"), ("110105800101001", "110105198001010016")] {
            assert_eq!(resident_id_15_to_18(id15).as_deref(), Some(id18));
        }
        for bad in ["11010549123100", "1101054912310021", "11010549123100A"] {
            assert_eq!(resident_id_15_to_18(bad), None, "{bad}");
        }
    }

    #[test]
    fn id_numbers_are_normalised_for_matching() {
        let table = [
            ("11010519491231002x", "11010519491231002X"),
            (" 110105 19491231 002X ", "11010519491231002X"),
            ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),
            ("１１０１０５\u{3000}１９４９１２３１００２ｘ", "11010519491231002X"),
            ("e1234-567", "E1234-567"),
            ("京A12345", "京A12345"),
        ];
        for (raw, normalized) in table {
            assert_eq!(normalize_id_number(raw), normalized, "{raw}");
        }
    }

    #[test]
    fn match_keys_follow_the_banks_rule() {
        let table: [(IdType, &str, Option<&str>); 7] = [
            (IdType::ResidentId, "110105491231002", Some("11010519491231002X")),
            (IdType::ResidentId, "11010519491231002x", Some("11010519491231002X")),
            (IdType::ResidentId, "1101054912310", Some("1101054912310")),
            (IdType::ResidentId, "1101051949123100211", Some("1101051949123100211")),
            (IdType::Passport, " e1234567 ", Some("E1234567")),
            (IdType::Other, "11010519491231002X", None),
            (IdType::Passport, "  ", None),
        ];
        for (t, raw, key) in table {
            assert_eq!(match_key(t, raw).as_deref(), key, "{t:?} {raw}");
        }
    }

    #[test]
    fn resident_ids_encode_birth_date_and_gender() {
        let info = inspect_resident_id("11010519491231002X").expect("valid");
        assert_eq!(info.birth_date, Date::new(1949, 12, 31).expect("date"));
        assert_eq!(info.gender, Gender::Female);
        let info = inspect_resident_id("110105198001010016").expect("valid");
        assert_eq!(info.gender, Gender::Male);
        let info = inspect_resident_id("110105491231002").expect("valid 15");
        assert_eq!((info.birth_date.year, info.gender), (1949, Gender::Female));
    }

    #[test]
    fn broken_resident_ids_say_what_is_wrong() {
        let table = [
            ("110105194912310021", ResidentIdProblem::BadCheckChar { expected: 'X', found: '1' }),
            ("110105194913310021", ResidentIdProblem::BadBirthDate),
            ("11010519490229002X", ResidentIdProblem::BadBirthDate),
            ("1101051949123100AX", ResidentIdProblem::NotDigits),
            ("110105194912310缐2X", ResidentIdProblem::NotDigits), // 18 characters, 20 bytes
            ("110105491331002", ResidentIdProblem::BadBirthDate),
            ("1101054912310", ResidentIdProblem::BadLength(13)),
        ];
        for (id, problem) in table {
            assert_eq!(inspect_resident_id(id), Err(problem), "{id}");
        }
    }

    #[test]
    fn dates_respect_the_calendar() {
        assert!(Date::new(2000, 2, 29).is_some());
        assert!(Date::new(1900, 2, 29).is_none());
        assert!(Date::new(2023, 4, 31).is_none());
        assert_eq!(Date::parse_iso("1949-12-31").map(|d| d.to_iso()).as_deref(), Some("1949-12-31"));
        assert_eq!(Date::parse_iso("1949-1-31"), None);
    }

    #[test]
    fn codes_round_trip() {
        assert_eq!(IdType::CODES.len(), 10);
        for &(t, code) in IdType::CODES {
            assert_eq!(t.code(), code);
            assert_eq!(IdType::from_code(&code.to_lowercase()), Some(t));
        }
        assert_eq!(IdType::from_code("DRIVING_LICENCE"), None);
        assert!(!IdType::Other.is_mergeable());
        assert!(IdType::UnifiedSocialCreditCode.is_corporate() && !IdType::ResidentId.is_corporate());
        for g in [Gender::Male, Gender::Female, Gender::Unknown] {
            assert_eq!(Gender::from_code(g.code()), Some(g));
        }
        assert_eq!(Gender::from_code("female"), Some(Gender::Female));
    }
}
