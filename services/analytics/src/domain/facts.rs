//! The facts analytics is fed, as checked values: products, balance snapshots and
//! transactions, each naming its customer by customer number or source key.

use crm_platform::convert::{Currency, Money};
use time::{Date, OffsetDateTime};

use super::aum::AssetClass;

/// How a fact names its customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerRef {
    /// A customer number (an absorbed one follows its survivor).
    Number(String),
    /// A source record's key, resolved through customer-profile's identification.
    Source {
        /// Source system code.
        system: String,
        /// The customer's id in that system.
        id: String,
    },
}

impl CustomerRef {
    /// `(customer number, source system, source id)` as the tables keep them.
    pub fn columns(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            CustomerRef::Number(n) => (Some(n), None, None),
            CustomerRef::Source { system, id } => (None, Some(system), Some(id)),
        }
    }
}

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Its code.
    pub code: String,
    /// Its display name.
    pub name: String,
    /// What it is for AUM.
    pub asset_class: AssetClass,
    /// The bank's risk rating, 1..=5.
    pub risk_level: i16,
    /// Weight in weighted AUM, basis points.
    pub aum_weight_bp: i32,
    /// Product family for per-family figures.
    pub family: String,
}

/// A day's closing balance of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceSnapshot {
    /// The account.
    pub account_id: String,
    /// Whose it is.
    pub customer: CustomerRef,
    /// The product it holds.
    pub product_code: String,
    /// The balance in its currency.
    pub balance: Money,
    /// The day it closed with this balance.
    pub date: Date,
}

/// How a transaction was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Branch counter.
    Counter,
    /// ATM.
    Atm,
    /// Mobile banking.
    Mobile,
    /// Online banking.
    Online,
    /// Card terminal.
    Pos,
    /// Call centre.
    CallCentre,
    /// Anything else.
    Other,
}

impl Channel {
    /// Every channel, in contract order.
    pub const ALL: [Channel; 7] = [
        Channel::Counter,
        Channel::Atm,
        Channel::Mobile,
        Channel::Online,
        Channel::Pos,
        Channel::CallCentre,
        Channel::Other,
    ];

    /// Its stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Counter => "counter",
            Channel::Atm => "atm",
            Channel::Mobile => "mobile",
            Channel::Online => "online",
            Channel::Pos => "pos",
            Channel::CallCentre => "call_centre",
            Channel::Other => "other",
        }
    }

    /// The channel of a stored code.
    pub fn parse(code: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// One posted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Unique per transaction.
    pub transaction_id: String,
    /// Whose it is.
    pub customer: CustomerRef,
    /// The account it moved.
    pub account_id: String,
    /// The product of the account.
    pub product_code: String,
    /// Positive in, negative out.
    pub amount: Money,
    /// How it was made.
    pub channel: Channel,
    /// When it was posted.
    pub posted_at: OffsetDateTime,
    /// Region code, possibly empty.
    pub region_code: String,
}

/// An amount in CNY fen at a rate of `cny_per_unit_micros` (CNY per unit × 10⁶),
/// rounded half away from zero. CNY itself converts to itself.
pub fn to_cny(amount: Money, cny_per_unit_micros: Option<i64>) -> Option<i64> {
    if amount.currency == Currency::CNY {
        return Some(amount.amount_minor);
    }
    let rate = i128::from(cny_per_unit_micros?);
    let scaled = i128::from(amount.amount_minor) * rate;
    let half = 500_000 * scaled.signum();
    i64::try_from((scaled + half) / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount_minor: i64, code: &str) -> Money {
        Money { amount_minor, currency: Currency::parse(code).unwrap() }
    }

    #[test]
    fn amounts_convert_to_cny_at_the_rate_rounding_half_away_from_zero() {
        struct Case {
            name: &'static str,
            amount: Money,
            rate: Option<i64>,
            expected: Option<i64>,
        }
        let cases = [
            Case { name: "CNY needs no rate", amount: money(12_345, "CNY"), rate: None, expected: Some(12_345) },
            Case { name: "USD at 7.1", amount: money(100, "USD"), rate: Some(7_100_000), expected: Some(710) },
            Case { name: "half rounds up", amount: money(1, "USD"), rate: Some(2_500_000), expected: Some(3) },
            Case {
                name: "half rounds away from zero",
                amount: money(-1, "USD"),
                rate: Some(2_500_000),
                expected: Some(-3),
            },
            Case { name: "below half rounds down", amount: money(1, "USD"), rate: Some(2_499_999), expected: Some(2) },
            Case { name: "no rate, no amount", amount: money(100, "USD"), rate: None, expected: None },
            Case { name: "overflow is refused", amount: money(i64::MAX, "USD"), rate: Some(7_000_000), expected: None },
        ];
        for case in cases {
            assert_eq!(to_cny(case.amount, case.rate), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn every_channel_code_reads_back_as_its_channel() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(Channel::parse("fax"), None);
    }
}
