//! The bank customer number.
//!
//! Rule: 12 digits. The first says the kind of customer (`8` personal, `9`
//! corporate), the next 10 are a sequence number, zero-padded, and the last is a Luhn
//! (mod 10) check digit over the first 11. Digits only, so that call-centre staff can
//! read them out; Luhn catches every single-digit error and most swaps of neighbours.

use super::record::PartyKind;

fn luhn_check_digit(digits: &str) -> Option<u32> {
    let mut sum = 0;
    // Doubling starts at the rightmost digit of the payload, since the check digit
    // will sit to its right.
    for (i, c) in digits.chars().rev().enumerate() {
        let mut d = c.to_digit(10)?;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some((10 - sum % 10) % 10)
}

/// The customer number for the `sequence`th customer of a kind; `None` once the 10
/// sequence digits are exhausted.
pub fn customer_number(kind: PartyKind, sequence: u64) -> Option<String> {
    if sequence >= 10_000_000_000 {
        return None;
    }
    let prefix = match kind {
        PartyKind::Personal => '8',
        PartyKind::Corporate => '9',
    };
    let payload = format!("{prefix}{sequence:010}");
    let check = luhn_check_digit(&payload)?;
    Some(format!("{payload}{check}"))
}

/// Whether `s` is a well-formed customer number with a correct check digit.
pub fn is_valid_customer_number(s: &str) -> bool {
    s.len() == 12
        && s.bytes().all(|b| b.is_ascii_digit())
        && matches!(s.as_bytes()[0], b'8' | b'9')
        && luhn_check_digit(&s[..11]).is_some_and(|c| Some(c) == s[11..].chars().next().and_then(|d| d.to_digit(10)))
}

/// A well-formed customer number with a correct check digit, parsed once where it
/// comes in (a request) and trusted from then on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerNumber(String);

impl CustomerNumber {
    /// The number in `s` (surrounding whitespace ignored), if it is one.
    pub fn parse(s: &str) -> Option<CustomerNumber> {
        let s = s.trim();
        is_valid_customer_number(s).then(|| CustomerNumber(s.to_string()))
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CustomerNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CustomerNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_kind_sequence_and_check_digit() {
        assert_eq!(customer_number(PartyKind::Personal, 1).as_deref(), Some("800000000011"));
        assert_eq!(customer_number(PartyKind::Corporate, 42).as_deref(), Some("900000000423"));
        assert_eq!(customer_number(PartyKind::Personal, 10_000_000_000), None);
        for seq in [0, 1, 7, 12_345, 9_999_999_999] {
            let n = customer_number(PartyKind::Personal, seq).expect("in range");
            assert!(is_valid_customer_number(&n), "{n}");
        }
    }

    #[test]
    fn every_single_digit_error_is_detected() {
        let n = customer_number(PartyKind::Personal, 1_234_567).expect("in range");
        for pos in 0..12 {
            for d in b'0'..=b'9' {
                let mut wrong = n.clone().into_bytes();
                if wrong[pos] == d {
                    continue;
                }
                wrong[pos] = d;
                let wrong = String::from_utf8(wrong).expect("ascii");
                assert!(!is_valid_customer_number(&wrong), "{wrong} passed");
            }
        }
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for bad in ["", "80000000001", "8000000000111", "80000000001X", "700000000011", "800000000012"] {
            assert!(!is_valid_customer_number(bad), "{bad}");
            assert_eq!(CustomerNumber::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_parsed_number_is_the_trimmed_digits() {
        let n = CustomerNumber::parse(" 800000000011\t").expect("valid");
        assert_eq!(n.as_str(), "800000000011");
        assert_eq!(n.to_string(), "800000000011");
    }
}
