//! Calendar months and days as the bank writes them: the month is the period customer
//! value is measured in.
//!
//! Contract: a `Month` is a month the calendar has (years −9999 to 9999), ordered by
//! time, written and stored as `YYYY-MM` (e.g. `2026-03`). Its first and last days are
//! always valid dates; only `next`/`prev` can run off the calendar's ends. Days stored
//! in JSON through [`iso_date`] are written `YYYY-MM-DD`, never as a year and ordinal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::Date;

/// Text that is not a calendar month or day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// Not `YYYY-MM`, or a month the calendar does not have.
    #[error("`{0}` is not a calendar month (expected YYYY-MM, e.g. 2026-03)")]
    NotAMonth(String),
    /// Not `YYYY-MM-DD`, or a day the calendar does not have.
    #[error("`{0}` is not a calendar day (expected YYYY-MM-DD, e.g. 2026-03-31)")]
    NotADay(String),
}

/// A calendar month, e.g. `2026-03`. Ordered by time; stored as `"YYYY-MM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    first: Date,
}

impl Month {
    /// The month `month` (1–12) of `year`, if the calendar has it (years −9999 to 9999).
    pub fn new(year: i32, month: u8) -> Result<Self, CalendarError> {
        time::Month::try_from(month)
            .ok()
            .and_then(|m| Date::from_calendar_date(year, m, 1).ok())
            .map(|first| Month { first })
            .ok_or_else(|| CalendarError::NotAMonth(format!("{year:04}-{month:02}")))
    }

    /// The month a day falls in.
    pub fn of(date: Date) -> Self {
        // Day 1 exists in every month, so the fallback is never taken.
        Month { first: date.replace_day(1).unwrap_or(date) }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.first.year()
    }

    /// The month number, 1–12.
    pub fn month(self) -> u8 {
        u8::from(self.first.month())
    }

    /// Number of days (28–31).
    pub fn days(self) -> u8 {
        self.first.month().length(self.year())
    }

    /// The first day.
    pub fn first_day(self) -> Date {
        self.first
    }

    /// The last day.
    pub fn last_day(self) -> Date {
        // `days()` is a valid day of this month, so the fallback is never taken.
        self.first.replace_day(self.days()).unwrap_or(self.first)
    }

    /// The following month; `None` only after 9999-12.
    pub fn next(self) -> Option<Self> {
        self.last_day().next_day().map(|first| Month { first })
    }

    /// The preceding month; `None` only before -9999-01.
    pub fn prev(self) -> Option<Self> {
        self.first.previous_day().map(Month::of)
    }

    /// Whether `date` falls in this month.
    pub fn contains(self, date: Date) -> bool {
        Month::of(date) == self
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month) = (self.year(), self.month());
        let sign = if year < 0 { "-" } else { "" };
        write!(f, "{sign}{:04}-{month:02}", year.unsigned_abs())
    }
}

impl FromStr for Month {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || CalendarError::NotAMonth(s.to_string());
        let (year, month) = s.rsplit_once('-').ok_or_else(invalid)?;
        let digits = year.strip_prefix('-').unwrap_or(year);
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if month.len() != 2 || digits.len() != 4 || !all_digits(digits) || !all_digits(month) {
            return Err(invalid());
        }
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let month: u8 = month.parse().map_err(|_| invalid())?;
        Month::new(year, month).map_err(|_| invalid())
    }
}

impl TryFrom<String> for Month {
    type Error = CalendarError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Month> for String {
    fn from(m: Month) -> Self {
        m.to_string()
    }
}

/// A day written `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Result<Date, CalendarError> {
    let invalid = || CalendarError::NotADay(s.to_string());
    let (month, day) = s.rsplit_once('-').ok_or_else(invalid)?;
    let month: Month = month.parse().map_err(|_| invalid())?;
    if day.len() != 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let day: u8 = day.parse().map_err(|_| invalid())?;
    month.first_day().replace_day(day).map_err(|_| invalid())
}

/// Serde for a `Date` field as `YYYY-MM-DD` text: `#[serde(with = "super::calendar::iso_date")]`.
pub mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use time::Date;

    /// Writes `YYYY-MM-DD`.
    pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        let month = super::Month::of(*date);
        serializer.collect_str(&format_args!("{month}-{:02}", date.day()))
    }

    /// Reads `YYYY-MM-DD`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_day(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    #[test]
    fn months_know_their_days_neighbours_and_text() {
        struct Case {
            name: &'static str,
            text: &'static str,
            days: u8,
            first: Date,
            last: Date,
            prev: &'static str,
            next: &'static str,
        }
        let cases = [
            Case {
                name: "march has 31 days",
                text: "2026-03",
                days: 31,
                first: date!(2026 - 03 - 01),
                last: date!(2026 - 03 - 31),
                prev: "2026-02",
                next: "2026-04",
            },
            Case {
                name: "february of a common year has 28 days",
                text: "2026-02",
                days: 28,
                first: date!(2026 - 02 - 01),
                last: date!(2026 - 02 - 28),
                prev: "2026-01",
                next: "2026-03",
            },
            Case {
                name: "february of a leap year has 29 days",
                text: "2028-02",
                days: 29,
                first: date!(2028 - 02 - 01),
                last: date!(2028 - 02 - 29),
                prev: "2028-01",
                next: "2028-03",
            },
            Case {
                name: "december rolls into the next year",
                text: "2026-12",
                days: 31,
                first: date!(2026 - 12 - 01),
                last: date!(2026 - 12 - 31),
                prev: "2026-11",
                next: "2027-01",
            },
            Case {
                name: "january rolls back into the previous year",
                text: "2027-01",
                days: 31,
                first: date!(2027 - 01 - 01),
                last: date!(2027 - 01 - 31),
                prev: "2026-12",
                next: "2027-02",
            },
        ];
        for c in cases {
            let m = month(c.text);
            assert_eq!(m.to_string(), c.text, "{}", c.name);
            assert_eq!((m.days(), m.first_day(), m.last_day()), (c.days, c.first, c.last), "{}", c.name);
            assert_eq!(m.prev(), Some(month(c.prev)), "{}", c.name);
            assert_eq!(m.next(), Some(month(c.next)), "{}", c.name);
            assert!(m.prev() < Some(m) && Some(m) < m.next(), "{}", c.name);
            assert_eq!(Month::of(c.last), m, "{}", c.name);
            assert!(m.contains(c.first) && !m.contains(c.first.previous_day().unwrap()), "{}", c.name);
        }
    }

    #[test]
    fn month_text_must_be_a_calendar_month() {
        let cases = [
            ("2026-03", Some((2026, 3))),
            ("0001-01", Some((1, 1))),
            ("9999-12", Some((9999, 12))),
            ("2026-13", None),
            ("2026-00", None),
            ("2026-3", None),
            ("26-03", None),
            ("2026/03", None),
            ("+202-03", None),
            ("2026-+3", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let got = text.parse::<Month>().map(|m| (m.year(), m.month())).ok();
            assert_eq!(got, expected, "{text:?}");
        }
        assert_eq!(month("9999-12").next(), None);
        assert_eq!(Month::new(2026, 13), Err(CalendarError::NotAMonth("2026-13".into())));
    }

    #[test]
    fn months_are_stored_as_year_dash_month() {
        let m = month("2026-03");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2026-03\"");
        assert_eq!(serde_json::from_str::<Month>("\"2026-03\"").unwrap(), m);
        assert!(serde_json::from_str::<Month>("\"2026-3\"").is_err());
    }

    #[test]
    fn days_are_written_year_month_day() {
        let cases = [
            ("2026-03-31", Some(date!(2026 - 03 - 31))),
            ("2028-02-29", Some(date!(2028 - 02 - 29))),
            ("2026-02-29", None),
            ("2026-04-31", None),
            ("2026-03-1", None),
            ("2026-03-+1", None),
            ("2026-03", None),
            ("20260331", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_day(text).ok(), expected, "{text:?}");
        }

        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Stored {
            #[serde(with = "iso_date")]
            on: Date,
        }
        let stored = Stored { on: date!(2026 - 07 - 01) };
        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(json, r#"{"on":"2026-07-01"}"#);
        assert_eq!(serde_json::from_str::<Stored>(&json).unwrap(), stored);
        assert!(serde_json::from_str::<Stored>(r#"{"on":"2026-02-30"}"#).is_err());
    }
}
