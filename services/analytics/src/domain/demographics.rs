//! Demographic attributes (人口属性) of a customer, as customer-profile's golden record
//! announces them: birth date, gender, and the region of the resident ID (its
//! administrative division code). Conditions read `age`, `gender` and `region`.
//!
//! Promises:
//! - Age is in whole years on a given day: it grows on the birthday; someone born on
//!   29 February grows older on 1 March in a year without one.
//! - A region code is exactly 6 digits; its first 2 are the province (`11` Beijing,
//!   `44` Guangdong), so `region starts with '44'` selects a province.

use std::fmt;
use std::str::FromStr;

use time::Date;

/// Gender as the golden record has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `M`.
    Male,
    /// `F`.
    Female,
    /// `U`: recorded as not known.
    Unknown,
}

impl Gender {
    /// The code conditions compare with and the store keeps: `M`, `F`, `U`.
    pub fn code(self) -> &'static str {
        match self {
            Gender::Male => "M",
            Gender::Female => "F",
            Gender::Unknown => "U",
        }
    }
}

impl FromStr for Gender {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "M" => Ok(Gender::Male),
            "F" => Ok(Gender::Female),
            "U" => Ok(Gender::Unknown),
            other => Err(format!("gender {other:?}")),
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A region: an administrative division code of 6 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

impl RegionCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RegionCode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(RegionCode(s.to_string()))
        } else {
            Err("a region code is 6 digits")
        }
    }
}

/// One customer's demographic attributes; each may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demographics {
    /// Date of birth.
    pub birth_date: Option<Date>,
    /// Gender.
    pub gender: Option<Gender>,
    /// Region of the resident ID.
    pub region: Option<RegionCode>,
}

/// Age in whole years on `on`; `None` before birth.
pub fn age_on(birth: Date, on: Date) -> Option<i64> {
    if on < birth {
        return None;
    }
    let had_birthday = (on.month() as u8, on.day()) >= (birth.month() as u8, birth.day());
    Some(i64::from(on.year() - birth.year()) - i64::from(!had_birthday))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn age_grows_on_the_birthday_and_after_29_february_on_1_march() {
        let cases = [
            ("the day of birth", date!(1990 - 06 - 15), date!(1990 - 06 - 15), Some(0)),
            ("the day before the 30th birthday", date!(1990 - 06 - 15), date!(2020 - 06 - 14), Some(29)),
            ("the 30th birthday", date!(1990 - 06 - 15), date!(2020 - 06 - 15), Some(30)),
            ("late in the year", date!(1990 - 06 - 15), date!(2020 - 12 - 31), Some(30)),
            ("a leap-day birth on 28 February", date!(2000 - 02 - 29), date!(2001 - 02 - 28), Some(0)),
            ("a leap-day birth on 1 March", date!(2000 - 02 - 29), date!(2001 - 03 - 01), Some(1)),
            ("a leap-day birth in a leap year", date!(2000 - 02 - 29), date!(2004 - 02 - 29), Some(4)),
            ("before birth", date!(1990 - 06 - 15), date!(1990 - 06 - 14), None),
        ];
        for (name, birth, on, expected) in cases {
            assert_eq!(age_on(birth, on), expected, "{name}");
        }
    }

    #[test]
    fn codes_read_back_and_region_codes_are_six_digits() {
        for g in [Gender::Male, Gender::Female, Gender::Unknown] {
            assert_eq!(g.code().parse::<Gender>(), Ok(g));
        }
        assert!("X".parse::<Gender>().is_err());
        let regions = [("110105", true), ("44052", false), ("4405240", false), ("44052X", false), ("", false)];
        for (code, ok) in regions {
            assert_eq!(code.parse::<RegionCode>().is_ok(), ok, "{code:?}");
        }
    }
}
