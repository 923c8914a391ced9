//! Masking of ID and phone numbers for screens and exports.

/// Keeps the first 6 and last 4 characters of an ID number (`110105********1234`);
/// short values keep only their last 4, values of 4 or fewer are masked entirely.
pub fn mask_id_number(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (head, tail) = if n > 10 {
        (6, 4)
    } else if n > 4 {
        (0, 4)
    } else {
        (0, 0)
    };
    chars.iter().enumerate().map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' }).collect()
}

/// Keeps the first 3 and last 4 digits of an 11-digit phone number (`138****5678`),
/// otherwise only the last 4.
pub fn mask_phone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (head, tail) = if n == 11 {
        (3, 4)
    } else if n > 4 {
        (0, 4)
    } else {
        (0, 0)
    };
    chars.iter().enumerate().map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_show_area_and_last_four() {
        let table = [
            ("11010519491231002X", "110105********002X"),
            ("110105491231002", "110105*****1002"),
            ("E1234567", "****4567"),
            ("A12", "***"),
            ("", ""),
        ];
        for (raw, masked) in table {
            assert_eq!(mask_id_number(raw), masked, "{raw}");
        }
    }

    #[test]
    fn phones_show_prefix_and_last_four() {
        for (raw, masked) in [("13812345678", "138****5678"), ("02161234567x", "********567x"), ("1234", "****")] {
            assert_eq!(mask_phone(raw), masked, "{raw}");
        }
    }
}
