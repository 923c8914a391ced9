//! Assets under management (AUM): the asset classes a customer holds, amounts per
//! class, and the class weights a level rule may apply.
//!
//! Contract:
//! - Money is integer fen (CNY minor units). Sums are taken in `i128`; results that go
//!   back to `i64` saturate at its bounds, which no real balance comes near.
//! - Loans are shown apart and never counted in AUM (`AssetClass::counts_in_aum`).
//! - Negative amounts (an overdrawn settlement account) count as they are and reduce
//!   AUM.
//! - Weighted AUM applies per-class weights in basis points (10000 = 1.0) and rounds
//!   the final sum once, half away from zero (四舍五入).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One yuan in fen, for writing amounts readably: `50_000 * YUAN`.
pub const YUAN: i64 = 100;

/// Why an AUM input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AumError {
    /// An asset class code that the bank does not use.
    #[error("unknown asset class `{0}` (expected deposit, wealth_management, settlement, loan or channel_product)")]
    UnknownAssetClass(String),
}

/// A class of the customer's holdings with the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetClass {
    /// Demand and time deposits.
    Deposit,
    /// Wealth-management products, valued at units × current NAV.
    WealthManagement,
    /// Settlement (current) accounts; may be overdrawn.
    Settlement,
    /// Loans: shown apart, never part of AUM.
    Loan,
    /// Products sold for other institutions (funds, insurance, precious metals).
    ChannelProduct,
}

impl AssetClass {
    /// Every class, in display order.
    pub const ALL: [AssetClass; 5] = [
        AssetClass::Deposit,
        AssetClass::WealthManagement,
        AssetClass::Settlement,
        AssetClass::Loan,
        AssetClass::ChannelProduct,
    ];

    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetClass::Deposit => "deposit",
            AssetClass::WealthManagement => "wealth_management",
            AssetClass::Settlement => "settlement",
            AssetClass::Loan => "loan",
            AssetClass::ChannelProduct => "channel_product",
        }
    }

    /// Whether balances of this class are added to AUM (every class but loans).
    pub fn counts_in_aum(self) -> bool {
        !matches!(self, AssetClass::Loan)
    }

    fn index(self) -> usize {
        match self {
            AssetClass::Deposit => 0,
            AssetClass::WealthManagement => 1,
            AssetClass::Settlement => 2,
            AssetClass::Loan => 3,
            AssetClass::ChannelProduct => 4,
        }
    }
}

impl FromStr for AssetClass {
    type Err = AumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssetClass::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| AumError::UnknownAssetClass(s.to_string()))
    }
}

impl fmt::Display for AssetClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-class weights in basis points (10000 = counted in full). Loans have no weight:
/// they never count. Stored as JSON inside a level rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Weight of deposits.
    pub deposit: u32,
    /// Weight of wealth-management products.
    pub wealth_management: u32,
    /// Weight of settlement accounts.
    pub settlement: u32,
    /// Weight of channel products.
    pub channel_product: u32,
}

impl Weights {
    /// Every AUM class counted in full.
    pub const FULL: Weights =
        Weights { deposit: 10_000, wealth_management: 10_000, settlement: 10_000, channel_product: 10_000 };

    /// The weight of one class in basis points (always 0 for loans).
    pub fn get(&self, class: AssetClass) -> u32 {
        match class {
            AssetClass::Deposit => self.deposit,
            AssetClass::WealthManagement => self.wealth_management,
            AssetClass::Settlement => self.settlement,
            AssetClass::Loan => 0,
            AssetClass::ChannelProduct => self.channel_product,
        }
    }
}

impl Default for Weights {
    fn default() -> Self {
        Weights::FULL
    }
}

/// An amount in fen for each asset class (a fixed map; absent classes are 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassAmounts {
    amounts: [i64; 5],
}

impl ClassAmounts {
    /// All classes at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` fen to `class` (saturating).
    pub fn add(&mut self, class: AssetClass, amount: i64) {
        let slot = &mut self.amounts[class.index()];
        *slot = slot.saturating_add(amount);
    }

    /// The amount of one class.
    pub fn get(&self, class: AssetClass) -> i64 {
        self.amounts[class.index()]
    }

    /// Every class with its amount, in display order.
    pub fn iter(&self) -> impl Iterator<Item = (AssetClass, i64)> + '_ {
        AssetClass::ALL.into_iter().map(|c| (c, self.get(c)))
    }

    /// AUM: the sum of every class that counts (loans excluded).
    pub fn aum_total(&self) -> i64 {
        clamp(self.iter().filter(|(c, _)| c.counts_in_aum()).map(|(_, a)| i128::from(a)).sum())
    }

    /// Weighted AUM: Σ amount × weight / 10000 over AUM classes, rounded once at the
    /// end, half away from zero.
    pub fn weighted_total(&self, weights: &Weights) -> i64 {
        let sum: i128 = self
            .iter()
            .filter(|(c, _)| c.counts_in_aum())
            .map(|(c, a)| i128::from(a) * i128::from(weights.get(c)))
            .sum();
        clamp(div_round_half_away(sum, 10_000))
    }
}

/// An amount for people: `CNY 1,234,567.89`, `CNY -0.05`.
pub fn format_cny(amount: i64) -> String {
    let abs = amount.unsigned_abs();
    let yuan = (abs / 100).to_string();
    let mut grouped = String::with_capacity(yuan.len() + yuan.len() / 3);
    for (i, ch) in yuan.chars().enumerate() {
        if i > 0 && (yuan.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if amount < 0 { "-" } else { "" };
    format!("CNY {sign}{grouped}.{:02}", abs % 100)
}

/// `n / d` for `d > 0`, rounded half away from zero.
pub(super) fn div_round_half_away(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d { q + n.signum() } else { q }
}

/// `v` as `i64`, saturating at its bounds.
pub(super) fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_class_codes_round_trip_and_only_loans_stay_out_of_aum() {
        let expected = [
            (AssetClass::Deposit, "deposit", true),
            (AssetClass::WealthManagement, "wealth_management", true),
            (AssetClass::Settlement, "settlement", true),
            (AssetClass::Loan, "loan", false),
            (AssetClass::ChannelProduct, "channel_product", true),
        ];
        for (class, code, counts) in expected {
            assert_eq!(class.as_str(), code);
            assert_eq!(code.parse::<AssetClass>(), Ok(class));
            assert_eq!(class.counts_in_aum(), counts, "{code}");
            assert_eq!(serde_json::to_string(&class).unwrap(), format!("\"{code}\""));
        }
        assert_eq!("Deposit".parse::<AssetClass>(), Err(AumError::UnknownAssetClass("Deposit".into())));
    }

    #[test]
    fn aum_leaves_loans_out_and_weights_round_once_half_away_from_zero() {
        struct Case {
            name: &'static str,
            amounts: &'static [(AssetClass, i64)],
            weights: Weights,
            total: i64,
            weighted: i64,
        }
        use AssetClass::*;
        let half_wm = Weights { wealth_management: 5_000, ..Weights::FULL };
        let half_settlement = Weights { settlement: 5_000, ..Weights::FULL };
        let cases = [
            Case {
                name: "full weights give the plain total of every class, added up",
                amounts: &[
                    (Deposit, 60),
                    (WealthManagement, 200),
                    (Settlement, 300),
                    (ChannelProduct, 400),
                    (Deposit, 40),
                ],
                weights: Weights::FULL,
                total: 1_000,
                weighted: 1_000,
            },
            Case {
                name: "loans are never added, whatever their size",
                amounts: &[(Deposit, 100), (Loan, 1_000_000)],
                weights: Weights::FULL,
                total: 100,
                weighted: 100,
            },
            Case {
                name: "a half weight halves its class and a half fen rounds up",
                amounts: &[(Deposit, 10_000), (WealthManagement, 333)],
                weights: half_wm,
                total: 10_333,
                weighted: 10_167,
            },
            Case {
                name: "an overdraft reduces AUM and rounding happens on the final sum",
                amounts: &[(Deposit, 1_000), (Settlement, -333)],
                weights: half_settlement,
                total: 667,
                weighted: 834,
            },
            Case {
                name: "a negative half fen rounds away from zero",
                amounts: &[(Settlement, -333)],
                weights: half_settlement,
                total: -333,
                weighted: -167,
            },
            Case {
                name: "zero weights count nothing",
                amounts: &[(Deposit, 100), (ChannelProduct, 100)],
                weights: Weights { deposit: 0, wealth_management: 0, settlement: 0, channel_product: 0 },
                total: 200,
                weighted: 0,
            },
        ];
        for c in cases {
            let mut a = ClassAmounts::new();
            for (class, amount) in c.amounts {
                a.add(*class, *amount);
            }
            assert_eq!(a.aum_total(), c.total, "{}", c.name);
            assert_eq!(a.weighted_total(&c.weights), c.weighted, "{}", c.name);
        }
    }

    #[test]
    fn weights_are_stored_as_json_and_loans_have_none() {
        let w: Weights = serde_json::from_str(
            r#"{"deposit":10000,"wealth_management":8000,"settlement":10000,"channel_product":5000}"#,
        )
        .unwrap();
        assert_eq!((w.get(AssetClass::WealthManagement), w.get(AssetClass::Loan)), (8_000, 0));
        assert!(
            serde_json::from_str::<Weights>(
                r#"{"deposit":1,"wealth_management":1,"settlement":1,"channel_product":1,"loan":1}"#
            )
            .is_err()
        );
        assert_eq!(Weights::default(), Weights::FULL);
    }

    #[test]
    fn amounts_read_as_yuan_with_thousands_separators() {
        let cases = [
            (0, "CNY 0.00"),
            (5, "CNY 0.05"),
            (-5, "CNY -0.05"),
            (5_000_000, "CNY 50,000.00"),
            (123_456_789, "CNY 1,234,567.89"),
            (-100_000, "CNY -1,000.00"),
            (i64::MIN, "CNY -92,233,720,368,547,758.08"),
        ];
        for (fen, text) in cases {
            assert_eq!(format_cny(fen), text);
        }
    }
}
