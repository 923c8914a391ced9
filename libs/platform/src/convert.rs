//! Wire conversions every service needs, written once: timestamps (nanoseconds kept)
//! and microsecond counts as `google.protobuf.Timestamp`, calendar dates as
//! `crm.common.v1.Date`, money (integer minor units of an ISO 4217 currency) as
//! `crm.common.v1.Money`.

use crm_proto::crm::common::v1 as common;
use prost_types::Timestamp;
use time::OffsetDateTime;

/// `t` as a protobuf timestamp, to the nanosecond.
pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

/// Microseconds since the Unix epoch (as stored in JSON lineage) as a timestamp;
/// negative counts lie before 1970.
pub fn timestamp_from_micros(micros: i64) -> Timestamp {
    Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1000) as i32 }
}

/// A protobuf timestamp back as a time, if it is one (nanos within 0..1e9).
pub fn time_of(t: &Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    (0..1_000_000_000).contains(&t.nanos).then_some(())?;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// `d` on the wire.
pub fn date(d: time::Date) -> common::Date {
    common::Date { year: d.year(), month: i32::from(u8::from(d.month())), day: i32::from(d.day()) }
}

/// A wire date back as a date, if it is one (year 1..9999, a day the month has).
pub fn date_of(d: &common::Date) -> Option<time::Date> {
    let month = time::Month::try_from(u8::try_from(d.month).ok()?).ok()?;
    (1..=9999).contains(&d.year).then_some(())?;
    time::Date::from_calendar_date(d.year, month, u8::try_from(d.day).ok()?).ok()
}

/// An ISO 4217 alphabetic currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Chinese yuan, the platform's reporting currency.
    pub const CNY: Currency = Currency(*b"CNY");

    /// `code` if it has the form of an ISO 4217 code (`CNY`, `USD`).
    pub fn parse(code: &str) -> Option<Self> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_uppercase).then_some(Currency(bytes))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money: integer minor units (fen, cents) of a currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Amount in the currency's minor unit; negative for debits and liabilities.
    pub amount_minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// Why a wire amount is not money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 4217 code such as CNY")]
pub struct BadCurrency;

impl TryFrom<&common::Money> for Money {
    type Error = BadCurrency;

    fn try_from(m: &common::Money) -> Result<Self, BadCurrency> {
        Ok(Money { amount_minor: m.amount_minor, currency: Currency::parse(&m.currency_code).ok_or(BadCurrency)? })
    }
}

impl From<Money> for common::Money {
    fn from(m: Money) -> Self {
        common::Money { amount_minor: m.amount_minor, currency_code: m.currency.as_str().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_nanoseconds_and_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_560_000_123_456_789).expect("a time");
        let wire = timestamp(t);
        assert_eq!((wire.seconds, wire.nanos), (1_764_560_000, 123_456_789));
        assert_eq!(time_of(&wire), Some(t));
        assert_eq!(time_of(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(time_of(&Timestamp { seconds: 0, nanos: 1_000_000_000 }), None);
        assert_eq!(time_of(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    #[test]
    fn microsecond_counts_become_timestamps_on_both_sides_of_the_epoch() {
        let cases =
            [(0, (0, 0)), (1_500_000, (1, 500_000_000)), (-1, (-1, 999_999_000)), (-1_500_000, (-2, 500_000_000))];
        for (micros, (seconds, nanos)) in cases {
            let t = timestamp_from_micros(micros);
            assert_eq!((t.seconds, t.nanos), (seconds, nanos), "{micros}");
        }
    }
    #[test]
    fn dates_round_trip_and_impossible_dates_are_refused() {
        let d = time::Date::from_calendar_date(2024, time::Month::February, 29).expect("a leap day");
        assert_eq!(date(d), common::Date { year: 2024, month: 2, day: 29 });
        assert_eq!(date_of(&date(d)), Some(d));
        let refused =
            [(2023, 2, 29), (2024, 13, 1), (2024, 0, 1), (2024, 4, 31), (0, 1, 1), (10_000, 1, 1), (2024, 1, -1)];
        for (year, month, day) in refused {
            assert_eq!(date_of(&common::Date { year, month, day }), None, "{year}-{month}-{day}");
        }
    }

    #[test]
    fn money_keeps_minor_units_and_refuses_a_malformed_currency() {
        let wire = common::Money { amount_minor: -12_345, currency_code: "USD".into() };
        let m = Money::try_from(&wire).expect("money");
        assert_eq!((m.amount_minor, m.currency.as_str()), (-12_345, "USD"));
        assert_eq!(common::Money::from(m), wire);
        for code in ["", "usd", "US", "USDX", "U$D", "人民币"] {
            let wire = common::Money { amount_minor: 1, currency_code: code.into() };
            assert_eq!(Money::try_from(&wire), Err(BadCurrency), "{code:?}");
        }
        assert_eq!(Currency::CNY.to_string(), "CNY");
    }
}
