//! Wire ↔ domain: requests become checked domain values here, once (each problem a
//! field violation under the path the caller sent); stored values become proto
//! messages here, once.

use crm_platform::FieldViolations;
use crm_platform::convert::{Money, date_of, time_of};
use crm_platform::paging::Page;
use crm_platform::validate::{Lines, text_problem};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;

use crate::domain::analysis::{Aggregation, ChurnSignal, GroupBy, MAX_MONTHS, Measure, decline_bp};
use crate::domain::aum::{AssetClass, ClassAmounts, Weights};
use crate::domain::calendar::Month;
use crate::domain::demographics::{Demographics, Gender};
use crate::domain::expr::ValueKind;
use crate::domain::facts::{BalanceSnapshot, Channel, CustomerRef, Product, Transaction};
use crate::domain::levels::{DowngradeTarget, LevelDef, LevelRule, UpgradeTiming};
use crate::domain::membership::MembershipChangeKind;
use crate::domain::score::Score;
use crate::domain::scorecard::{Band, GradeCut, MetricBands, Scorecard};
use crate::domain::tags::{Code, SegmentDefinition, TagDefinition, TagKind, TagSource, attribute, check_tag_rule};
use crate::domain::target_progress::Progress;
use crate::domain::targets::{Assignee, Indicator, OrgPath, Period, RmId, Target};
use crate::store::analysis::{AumAt, AumGroup, ChurnRow, GroupRow, MigrationCell, RmRow};
use crate::store::rfm::RfmRow;
use crate::store::scorecards::NamedScorecard;
use crate::store::segments::{ChangeRow, StayRow};
use crate::store::targets::StoredTarget;

/// Longest account id, transaction id and source customer id.
const MAX_ID_CHARS: usize = 64;
/// Longest product code, source system code and customer number.
const MAX_CODE_CHARS: usize = 32;
/// Longest product name.
const MAX_NAME_CHARS: usize = 200;

/// Problems of one message, each field named under `prefix`.
struct Problems<'a> {
    prefix: &'a str,
    violations: FieldViolations,
}

impl<'a> Problems<'a> {
    fn new(prefix: &'a str) -> Self {
        Self { prefix, violations: FieldViolations::new() }
    }

    fn add(&mut self, field: &str, description: impl Into<String>) {
        self.violations.add(format!("{}{field}", self.prefix), description);
    }

    /// `value` trimmed when it is one line of 1..=max characters.
    fn line(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        match text_problem(value, max, Lines::Single) {
            Some(problem) => {
                self.add(field, problem);
                None
            }
            None => Some(value.to_string()),
        }
    }

    /// `value` when it is 1..=max characters of letters, digits, `-`, `_`, `.`.
    fn code(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let ok = !value.is_empty()
            && value.chars().count() <= max
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.add(field, format!("must be 1–{max} letters, digits, '-', '_' or '.'"));
        }
        ok.then(|| value.to_string())
    }

    fn customer(&mut self, field: &str, customer: Option<&pb::CustomerRef>) -> Option<CustomerRef> {
        use pb::customer_ref::Customer;
        match customer.and_then(|c| c.customer.as_ref()) {
            None => {
                self.add(field, "is required: a customer number or a source key");
                None
            }
            Some(Customer::CustomerNumber(n)) => {
                let n = n.trim();
                if n.is_empty() || n.len() > MAX_CODE_CHARS || !n.chars().all(|c| c.is_ascii_digit()) {
                    self.add(&format!("{field}.customer_number"), "must be 1–32 digits");
                    return None;
                }
                Some(CustomerRef::Number(n.to_string()))
            }
            Some(Customer::SourceKey(key)) => {
                let system =
                    self.line(&format!("{field}.source_key.source_system"), &key.source_system, MAX_CODE_CHARS);
                let id =
                    self.line(&format!("{field}.source_key.source_customer_id"), &key.source_customer_id, MAX_ID_CHARS);
                Some(CustomerRef::Source { system: system?, id: id? })
            }
        }
    }

    fn money(&mut self, field: &str, money: Option<&common::Money>) -> Option<Money> {
        match money {
            None => {
                self.add(field, "is required");
                None
            }
            Some(m) => Money::try_from(m).map_err(|e| self.add(&format!("{field}.currency_code"), e.to_string())).ok(),
        }
    }

    fn date(&mut self, field: &str, date: Option<&common::Date>) -> Option<time::Date> {
        let parsed = date.and_then(date_of);
        if parsed.is_none() {
            self.add(field, "is required and must be a real calendar date");
        }
        parsed
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, FieldViolations> {
        match value {
            Some(value) if self.violations.is_empty() => Ok(value),
            _ => Err(self.violations),
        }
    }
}

/// The asset class of the wire enum.
pub fn asset_class(class: i32) -> Option<AssetClass> {
    match pb::AssetClass::try_from(class).ok()? {
        pb::AssetClass::Unspecified => None,
        pb::AssetClass::Deposit => Some(AssetClass::Deposit),
        pb::AssetClass::WealthManagement => Some(AssetClass::WealthManagement),
        pb::AssetClass::Settlement => Some(AssetClass::Settlement),
        pb::AssetClass::Loan => Some(AssetClass::Loan),
        pb::AssetClass::ChannelProduct => Some(AssetClass::ChannelProduct),
    }
}

impl From<AssetClass> for pb::AssetClass {
    fn from(class: AssetClass) -> Self {
        match class {
            AssetClass::Deposit => pb::AssetClass::Deposit,
            AssetClass::WealthManagement => pb::AssetClass::WealthManagement,
            AssetClass::Settlement => pb::AssetClass::Settlement,
            AssetClass::Loan => pb::AssetClass::Loan,
            AssetClass::ChannelProduct => pb::AssetClass::ChannelProduct,
        }
    }
}

/// The product `p`, its problems named under `prefix` (e.g. `products[2].`).
pub fn product(p: &pb::Product, prefix: &str) -> Result<Product, FieldViolations> {
    let mut problems = Problems::new(prefix);
    let code = problems.code("product_code", &p.product_code, MAX_CODE_CHARS);
    let name = problems.line("name", &p.name, MAX_NAME_CHARS);
    let class = asset_class(p.asset_class);
    if class.is_none() {
        problems.add("asset_class", "must be one of the asset classes");
    }
    if !(1..=5).contains(&p.risk_level) {
        problems.add("risk_level", "must be 1..=5");
    }
    if !(0..=100_000).contains(&p.aum_weight_bp) {
        problems.add("aum_weight_bp", "must be 0..=100000 basis points");
    }
    let family = match p.family.trim() {
        "" => class.map(|c| c.as_str().to_string()),
        f => problems.line("family", f, MAX_CODE_CHARS),
    };
    let product = match (code, name, class, family) {
        (Some(code), Some(name), Some(asset_class), Some(family)) => Some(Product {
            code,
            name,
            asset_class,
            risk_level: p.risk_level as i16,
            aum_weight_bp: p.aum_weight_bp,
            family,
        }),
        _ => None,
    };
    problems.finish(product)
}

impl From<&Product> for pb::Product {
    fn from(p: &Product) -> Self {
        pb::Product {
            product_code: p.code.clone(),
            name: p.name.clone(),
            asset_class: pb::AssetClass::from(p.asset_class) as i32,
            risk_level: i32::from(p.risk_level),
            aum_weight_bp: p.aum_weight_bp,
            family: p.family.clone(),
        }
    }
}

/// The balance snapshot of a stream message.
pub fn balance(request: &pb::LoadBalancesRequest) -> Result<BalanceSnapshot, FieldViolations> {
    let mut problems = Problems::new("snapshot.");
    let Some(s) = request.snapshot.as_ref() else {
        let mut v = FieldViolations::new();
        v.add("snapshot", "is required");
        return Err(v);
    };
    let account_id = problems.line("account_id", &s.account_id, MAX_ID_CHARS);
    let customer = problems.customer("customer", s.customer.as_ref());
    let product_code = problems.code("product_code", &s.product_code, MAX_CODE_CHARS);
    let balance = problems.money("balance", s.balance.as_ref());
    let date = problems.date("balance_date", s.balance_date.as_ref());
    let date = date.filter(|d| {
        let recent = *d >= crate::store::rules::START;
        if !recent {
            problems.add("balance_date", format!("must be {} or later", crate::store::rules::START));
        }
        recent
    });
    let snapshot = match (account_id, customer, product_code, balance, date) {
        (Some(account_id), Some(customer), Some(product_code), Some(balance), Some(date)) => {
            Some(BalanceSnapshot { account_id, customer, product_code, balance, date })
        }
        _ => None,
    };
    problems.finish(snapshot)
}

/// The channel of the wire enum.
pub fn channel(channel: i32) -> Option<Channel> {
    match pb::Channel::try_from(channel).ok()? {
        pb::Channel::Unspecified => None,
        pb::Channel::Counter => Some(Channel::Counter),
        pb::Channel::Atm => Some(Channel::Atm),
        pb::Channel::Mobile => Some(Channel::Mobile),
        pb::Channel::Online => Some(Channel::Online),
        pb::Channel::Pos => Some(Channel::Pos),
        pb::Channel::CallCentre => Some(Channel::CallCentre),
        pb::Channel::Other => Some(Channel::Other),
    }
}

/// The transaction `t`, its problems named under `prefix` (`transaction.`).
pub fn transaction(t: Option<&pb::Transaction>, prefix: &str) -> Result<Transaction, FieldViolations> {
    let Some(t) = t else {
        let mut v = FieldViolations::new();
        v.add(prefix.trim_end_matches('.'), "is required");
        return Err(v);
    };
    let mut problems = Problems::new(prefix);
    let transaction_id = problems.line("transaction_id", &t.transaction_id, MAX_ID_CHARS);
    let customer = problems.customer("customer", t.customer.as_ref());
    let account_id = problems.line("account_id", &t.account_id, MAX_ID_CHARS);
    let product_code = problems.code("product_code", &t.product_code, MAX_CODE_CHARS);
    let amount = problems.money("amount", t.amount.as_ref());
    let channel = channel(t.channel);
    if channel.is_none() {
        problems.add("channel", "must be one of the channels");
    }
    let posted_at = t.posted_time.as_ref().and_then(time_of);
    if posted_at.is_none() {
        problems.add("posted_time", "is required");
    }
    let region_code = t.region_code.trim().to_string();
    if !region_code.is_empty() && (region_code.len() != 6 || !region_code.chars().all(|c| c.is_ascii_digit())) {
        problems.add("region_code", "must be 6 digits when given");
    }
    let transaction = match (transaction_id, customer, account_id, product_code, amount, channel, posted_at) {
        (
            Some(transaction_id),
            Some(customer),
            Some(account_id),
            Some(product_code),
            Some(amount),
            Some(channel),
            Some(posted_at),
        ) => Some(Transaction {
            transaction_id,
            customer,
            account_id,
            product_code,
            amount,
            channel,
            posted_at,
            region_code,
        }),
        _ => None,
    };
    problems.finish(transaction)
}

/// The level rule of a `PutLevelRule` request; its problems under `rule.`.
pub fn level_rule(rule: Option<&pb::LevelRule>) -> Result<LevelRule, FieldViolations> {
    let Some(r) = rule else {
        let mut v = FieldViolations::new();
        v.add("rule", "is required");
        return Err(v);
    };
    let mut problems = Problems::new("rule.");
    if r.version < 1 {
        problems.add("version", "must be 1 or more");
    }
    let effective_from = problems.date("effective_from", r.effective_from.as_ref());
    if r.levels.len() < 2 {
        problems.add("levels", "at least two levels");
    }
    let mut levels = Vec::new();
    for (i, l) in r.levels.iter().enumerate() {
        let code_ok = !l.code.is_empty()
            && l.code.len() <= 32
            && l.code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !code_ok {
            problems.add(&format!("levels[{i}].code"), "must be 1–32 lower-case letters, digits or '_'");
        }
        let name = problems.line(&format!("levels[{i}].name"), &l.name, MAX_NAME_CHARS);
        if l.min_aum_minor < 0 {
            problems.add(&format!("levels[{i}].min_aum_minor"), "must not be negative");
        }
        if let Some(name) = name {
            levels.push(LevelDef {
                code: l.code.clone(),
                name,
                min_aum: l.min_aum_minor,
                downgrade_after_months: None,
            });
        }
    }
    let upgrade = match pb::UpgradeTiming::try_from(r.upgrade) {
        Ok(pb::UpgradeTiming::Immediate) => Some(UpgradeTiming::Immediate),
        Ok(pb::UpgradeTiming::NextMonth) => Some(UpgradeTiming::NextMonth),
        _ => None,
    };
    if upgrade.is_none() {
        problems.add("upgrade", "must be IMMEDIATE or NEXT_MONTH");
    }
    let downgrade_to = match pb::DowngradeTarget::try_from(r.downgrade_to) {
        Ok(pb::DowngradeTarget::LatestMonth) => Some(DowngradeTarget::LatestMonth),
        Ok(pb::DowngradeTarget::BestMonthInWindow) => Some(DowngradeTarget::BestMonthInWindow),
        _ => None,
    };
    if downgrade_to.is_none() {
        problems.add("downgrade_to", "must be LATEST_MONTH or BEST_MONTH_IN_WINDOW");
    }
    if !(1..=24).contains(&r.downgrade_after_months) {
        problems.add("downgrade_after_months", "must be 1..=24");
    }
    let rule = match (effective_from, upgrade, downgrade_to) {
        (Some(effective_from), Some(upgrade), Some(downgrade_to)) => Some(LevelRule {
            version: r.version.max(0) as u32,
            effective_from,
            levels,
            weights: Weights::FULL,
            upgrade,
            downgrade_after_months: r.downgrade_after_months.max(0) as u32,
            downgrade_to,
        }),
        _ => None,
    };
    let rule = problems.finish(rule)?;
    rule.validate().map_err(|e| {
        let mut v = FieldViolations::new();
        v.add("rule.levels", e.to_string());
        v
    })?;
    Ok(rule)
}

impl From<&LevelRule> for pb::LevelRule {
    fn from(r: &LevelRule) -> Self {
        pb::LevelRule {
            version: r.version as i32,
            effective_from: Some(crm_platform::convert::date(r.effective_from)),
            levels: r
                .levels
                .iter()
                .map(|l| pb::LevelDefinition { code: l.code.clone(), name: l.name.clone(), min_aum_minor: l.min_aum })
                .collect(),
            upgrade: match r.upgrade {
                UpgradeTiming::Immediate => pb::UpgradeTiming::Immediate,
                UpgradeTiming::NextMonth => pb::UpgradeTiming::NextMonth,
            } as i32,
            downgrade_after_months: r.downgrade_after_months as i32,
            downgrade_to: match r.downgrade_to {
                DowngradeTarget::LatestMonth => pb::DowngradeTarget::LatestMonth,
                DowngradeTarget::BestMonthInWindow => pb::DowngradeTarget::BestMonthInWindow,
            } as i32,
        }
    }
}

/// Longest tag rule or segment condition, in characters.
const MAX_CONDITION_CHARS: usize = 4_000;

/// A tag or segment code under `field`.
fn tag_code(problems: &mut Problems<'_>, field: &str, value: &str) -> Option<Code> {
    value.trim().parse::<Code>().map_err(|e| problems.add(field, e)).ok()
}

/// A condition's source under `field`: required and not too long (parsed by the caller).
fn condition_source<'s>(problems: &mut Problems<'_>, field: &str, value: &'s str) -> Option<&'s str> {
    if value.trim().is_empty() {
        problems.add(field, "is required");
        None
    } else if value.chars().count() > MAX_CONDITION_CHARS {
        problems.add(field, format!("at most {MAX_CONDITION_CHARS} characters"));
        None
    } else {
        Some(value)
    }
}

/// The tag of a DefineTag request: code, name, and a rule that parses and checks
/// against the attribute catalogue (`tag.rule`, `column N: …`) or manual.
pub fn tag_definition(tag: Option<&pb::Tag>) -> Result<TagDefinition, FieldViolations> {
    let mut p = Problems::new("tag.");
    let Some(tag) = tag else {
        let mut v = FieldViolations::new();
        v.add("tag", "is required");
        return Err(v);
    };
    let code = tag_code(&mut p, "code", &tag.code);
    let name = p.line("name", &tag.name, MAX_NAME_CHARS);
    let kind = match pb::TagKind::try_from(tag.kind) {
        Ok(pb::TagKind::Rule) => condition_source(&mut p, "rule", &tag.rule)
            .and_then(|source| check_tag_rule(source).map_err(|e| p.add("rule", e.to_string())).ok())
            .map(TagKind::Rule),
        Ok(pb::TagKind::Manual) if tag.rule.trim().is_empty() => Some(TagKind::Manual),
        Ok(pb::TagKind::Manual) => {
            p.add("rule", "a manual tag has no rule");
            None
        }
        _ => {
            p.add("kind", "must be TAG_KIND_RULE or TAG_KIND_MANUAL");
            None
        }
    };
    match (code, name, kind) {
        (Some(code), Some(name), Some(kind)) if p.violations.is_empty() => {
            Ok(TagDefinition { code, name, kind, version: 0 })
        }
        _ => Err(p.violations),
    }
}

/// The segment of a DefineSegment request: code, name and the condition's source (its
/// check needs the tags defined, made by the store).
pub fn segment_request(segment: Option<&pb::Segment>) -> Result<(Code, String, String), FieldViolations> {
    let mut p = Problems::new("segment.");
    let Some(segment) = segment else {
        let mut v = FieldViolations::new();
        v.add("segment", "is required");
        return Err(v);
    };
    let code = tag_code(&mut p, "code", &segment.code);
    let name = p.line("name", &segment.name, MAX_NAME_CHARS);
    let condition = condition_source(&mut p, "condition", &segment.condition);
    match (code, name, condition) {
        (Some(code), Some(name), Some(condition)) => Ok((code, name, condition.to_string())),
        _ => Err(p.violations),
    }
}

/// A tag or segment code of a request, under `field`.
pub fn code(field: &str, value: &str) -> Result<Code, FieldViolations> {
    let mut p = Problems::new("");
    tag_code(&mut p, field, value).ok_or(p.violations)
}

impl From<TagSource> for pb::TagKind {
    fn from(s: TagSource) -> Self {
        match s {
            TagSource::Rule => pb::TagKind::Rule,
            TagSource::Manual => pb::TagKind::Manual,
        }
    }
}

impl From<&TagDefinition> for pb::Tag {
    fn from(t: &TagDefinition) -> Self {
        let (kind, rule) = match &t.kind {
            TagKind::Rule(expr) => (pb::TagKind::Rule, expr.to_string()),
            TagKind::Manual => (pb::TagKind::Manual, String::new()),
        };
        pb::Tag { code: t.code.to_string(), name: t.name.clone(), kind: kind as i32, rule, version: t.version as i32 }
    }
}

impl From<&SegmentDefinition> for pb::Segment {
    fn from(s: &SegmentDefinition) -> Self {
        pb::Segment {
            code: s.code.to_string(),
            name: s.name.clone(),
            condition: s.condition.to_string(),
            version: s.version as i32,
        }
    }
}

// --- RFM and scorecards ---

/// A scorecard definition and its name, every problem named: the code, the name, each
/// metric (a numeric attribute of the catalogue), then the card's own rules (bands
/// covering every value, grades for every reachable total).
pub fn scorecard(card: Option<&pb::Scorecard>) -> Result<(String, Scorecard), FieldViolations> {
    let mut p = Problems::new("scorecard.");
    let Some(card) = card else {
        let mut v = FieldViolations::new();
        v.add("scorecard", "is required");
        return Err(v);
    };
    let code = card.code.trim();
    let code_ok = (1..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !code_ok {
        p.add("code", "must be 1–32 letters, digits or '_'");
    }
    let name = p.line("name", &card.name, MAX_NAME_CHARS);
    if card.metrics.is_empty() {
        p.add("metrics", "at least one metric is required");
    }
    for (i, m) in card.metrics.iter().enumerate() {
        match attribute(m.metric.trim()) {
            Some(a) if a.kind() == ValueKind::Number => {}
            Some(_) => p.add(&format!("metrics[{i}].metric"), format!("'{}' is not a number", m.metric.trim())),
            None => p.add(&format!("metrics[{i}].metric"), format!("unknown attribute '{}'", m.metric.trim())),
        }
    }
    let domain = Scorecard {
        code: code.to_string(),
        version: 0,
        metrics: card
            .metrics
            .iter()
            .map(|m| MetricBands {
                metric: m.metric.trim().to_string(),
                bands: m.bands.iter().map(|b| Band { from: b.from, to: b.to, points: b.points }).collect(),
            })
            .collect(),
        grades: card
            .grades
            .iter()
            .map(|g| GradeCut { min_total: g.min_total, grade: g.grade.trim().to_string() })
            .collect(),
    };
    if p.violations.is_empty()
        && let Err(e) = domain.validate()
    {
        p.add("metrics", e.to_string());
    }
    p.finish(name.map(|name| (name, domain)))
}

impl From<&NamedScorecard> for pb::Scorecard {
    fn from(s: &NamedScorecard) -> Self {
        pb::Scorecard {
            code: s.card.code.clone(),
            version: i32::try_from(s.card.version).unwrap_or(i32::MAX),
            name: s.name.clone(),
            metrics: s
                .card
                .metrics
                .iter()
                .map(|m| pb::ScorecardMetric {
                    metric: m.metric.clone(),
                    bands: m
                        .bands
                        .iter()
                        .map(|b| pb::ScorecardBand { from: b.from, to: b.to, points: b.points })
                        .collect(),
                })
                .collect(),
            grades: s
                .card
                .grades
                .iter()
                .map(|g| pb::ScorecardGrade { min_total: g.min_total, grade: g.grade.clone() })
                .collect(),
        }
    }
}

impl From<&Score> for pb::CustomerScore {
    fn from(s: &Score) -> Self {
        pb::CustomerScore {
            scorecard_code: s.scorecard.clone(),
            version: i32::try_from(s.version).unwrap_or(i32::MAX),
            total: s.total,
            grade: s.grade.clone().unwrap_or_default(),
            lines: s
                .lines
                .iter()
                .map(|l| pb::ScoreLine {
                    metric: l.metric.clone(),
                    value: l.value,
                    band: l.band.map_or(0, |b| i32::try_from(b.index + 1).unwrap_or(i32::MAX)),
                    band_from: l.band.and_then(|b| b.from),
                    band_to: l.band.and_then(|b| b.to),
                    points: l.points,
                })
                .collect(),
            explanation: s.to_string(),
        }
    }
}

impl From<&RfmRow> for pb::RfmScores {
    fn from(r: &RfmRow) -> Self {
        pb::RfmScores {
            family: r.family.clone(),
            r: i32::from(r.r),
            f: i32::from(r.f),
            m: i32::from(r.m),
            code: i32::from(r.rfm().code()),
            recency_days: r.recency_days,
            frequency: r.frequency,
            monetary_minor: r.monetary_minor,
        }
    }
}

// --- Demographics ---

/// The demographic attributes customer-profile announced; a value that is not one
/// (an unspecified gender, a malformed region or date) counts as not known.
pub fn demographics(d: &crm_proto::crm::customer::v1::CustomerDemographics) -> Demographics {
    use crm_proto::crm::customer::v1::Gender as Wire;
    Demographics {
        birth_date: d.birth_date.as_ref().and_then(date_of),
        gender: match Wire::try_from(d.gender) {
            Ok(Wire::Male) => Some(Gender::Male),
            Ok(Wire::Female) => Some(Gender::Female),
            Ok(Wire::Unknown) => Some(Gender::Unknown),
            _ => None,
        },
        region: d.region_code.parse().ok(),
    }
}

// Analysis: GetAumByOrg, GetLevelMigration, ListChurnSignals, GetRmPerformance,
// AggregateCustomers.

/// The list name in churn-signal page tokens.
pub const CHURN_LIST: &str = "churn-signals";

/// The month in `value` under `field`: required unless `optional`, then `None` when
/// empty.
fn month_field(v: &mut FieldViolations, field: &str, value: &str, optional: bool) -> Option<Month> {
    let value = value.trim();
    if value.is_empty() && optional {
        return None;
    }
    let parsed = value.parse::<Month>().ok().filter(|m| *m >= Month::of(crate::store::rules::START));
    if parsed.is_none() {
        v.add(field, format!("must be a month such as 2026-03, {} or later", Month::of(crate::store::rules::START)));
    }
    parsed
}

/// The org and the day or month of a GetAumByOrg request (`None`: the default org).
pub fn aum_by_org_request(r: &pb::GetAumByOrgRequest) -> Result<(Option<String>, AumAt), FieldViolations> {
    use pb::get_aum_by_org_request::At;
    let mut v = FieldViolations::new();
    let org = r.org_id.trim();
    if org.chars().count() > MAX_ID_CHARS || org.chars().any(char::is_control) {
        v.add("org_id", format!("at most {MAX_ID_CHARS} characters on one line"));
    }
    let at = match &r.at {
        None => {
            v.add("date", "a date or a month is required");
            None
        }
        Some(At::Date(d)) => {
            let day = date_of(d).filter(|d| *d >= crate::store::rules::START);
            if day.is_none() {
                v.add("date", format!("must be a real calendar date, {} or later", crate::store::rules::START));
            }
            day.map(AumAt::Day)
        }
        Some(At::Month(m)) => month_field(&mut v, "month", m, false).map(AumAt::Month),
    };
    match at {
        Some(at) if v.is_empty() => Ok(((!org.is_empty()).then(|| org.to_string()), at)),
        _ => Err(v),
    }
}

/// The two months of a GetLevelMigration request (the second after the first).
pub fn level_migration_request(r: &pb::GetLevelMigrationRequest) -> Result<(Month, Month), FieldViolations> {
    let mut v = FieldViolations::new();
    let from = month_field(&mut v, "from_month", &r.from_month, false);
    let to = month_field(&mut v, "to_month", &r.to_month, true).or_else(|| from.and_then(Month::next));
    match (from, to) {
        (Some(from), Some(to)) if to <= from => {
            v.add("to_month", "must be after from_month");
        }
        (Some(from), None) if r.to_month.trim().is_empty() => {
            v.add("to_month", format!("is required: no month follows {from}"));
        }
        _ => {}
    }
    match (from, to) {
        (Some(from), Some(to)) if v.is_empty() => Ok((from, to)),
        _ => Err(v),
    }
}

/// A ListChurnSignals request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnRequest {
    /// The signal and its threshold.
    pub signal: ChurnSignal,
    /// Months looked back.
    pub months: u32,
    /// The reference month; `None`: the latest closed.
    pub month: Option<Month>,
    /// The page.
    pub page: Page,
}

/// The signal, months, reference month and page of a ListChurnSignals request.
pub fn churn_request(r: &pb::ListChurnSignalsRequest) -> Result<ChurnRequest, FieldViolations> {
    let mut v = FieldViolations::new();
    let months = u32::try_from(r.months).ok().filter(|m| (1..=MAX_MONTHS).contains(m));
    if months.is_none() {
        v.add("months", format!("must be 1..={MAX_MONTHS}"));
    }
    let percent = u32::try_from(r.decline_percent).ok().filter(|p| (1..=100).contains(p));
    let signal = match pb::ChurnSignal::try_from(r.signal) {
        Ok(pb::ChurnSignal::AumDecline) => {
            if percent.is_none() {
                v.add("decline_percent", "must be 1..=100 for AUM_DECLINE");
            }
            percent.map(|percent| ChurnSignal::AumDecline { percent })
        }
        Ok(pb::ChurnSignal::NoTransactions) => {
            if r.decline_percent != 0 {
                v.add("decline_percent", "must be 0 for NO_TRANSACTIONS");
            }
            Some(ChurnSignal::NoTransactions)
        }
        _ => {
            v.add("signal", "must be AUM_DECLINE or NO_TRANSACTIONS");
            None
        }
    };
    let month = month_field(&mut v, "month", &r.month, true);
    let page = Page::parse(CHURN_LIST, r.page_size, &r.page_token, &mut v);
    match (signal, months) {
        (Some(signal), Some(months)) if v.is_empty() => Ok(ChurnRequest { signal, months, month, page }),
        _ => Err(v),
    }
}

/// The period of a GetRmPerformance request: the first and last month (not before it).
pub fn rm_performance_request(r: &pb::GetRmPerformanceRequest) -> Result<(Month, Month), FieldViolations> {
    let mut v = FieldViolations::new();
    let from = month_field(&mut v, "from_month", &r.from_month, false);
    let to = month_field(&mut v, "to_month", &r.to_month, true).or(from);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        v.add("to_month", "must not be before from_month");
    }
    match (from, to) {
        (Some(from), Some(to)) if v.is_empty() => Ok((from, to)),
        _ => Err(v),
    }
}

/// The aggregation of an AggregateCustomers request: a known dimension and measure
/// (every unknown name its own violation), a bucket width only for a number dimension.
pub fn aggregation(r: &pb::AggregateCustomersRequest) -> Result<Aggregation, FieldViolations> {
    let mut v = FieldViolations::new();
    let group_by = r.group_by.trim().parse::<GroupBy>().map_err(|e| v.add("group_by", e)).ok();
    let measure = r.measure.trim().parse::<Measure>().map_err(|e| v.add("measure", e)).ok();
    if r.bucket_width < 0 {
        v.add("bucket_width", "must not be negative");
    } else if r.bucket_width > 0 && group_by.is_some_and(|g| !g.is_numeric()) {
        v.add("bucket_width", "only a number dimension is cut into buckets");
    }
    match (group_by, measure) {
        (Some(group_by), Some(measure)) if v.is_empty() => {
            Ok(Aggregation { group_by, measure, bucket_width: (r.bucket_width > 0).then_some(r.bucket_width) })
        }
        _ => Err(v),
    }
}

/// Every asset class with its amount, in display order.
fn class_amounts(amounts: &ClassAmounts) -> Vec<pb::ClassAmount> {
    amounts
        .iter()
        .map(|(class, amount_minor)| pb::ClassAmount { asset_class: pb::AssetClass::from(class) as i32, amount_minor })
        .collect()
}

impl From<&AumGroup> for pb::AumByOrgRow {
    fn from(g: &AumGroup) -> Self {
        pb::AumByOrgRow {
            org_id: g.org_id.clone(),
            level_code: g.level_code.clone(),
            customer_count: g.customer_count,
            amounts: class_amounts(&g.by_class()),
            aum_total_minor: g.aum_total,
        }
    }
}

impl From<&MigrationCell> for pb::LevelMigrationCell {
    fn from(c: &MigrationCell) -> Self {
        pb::LevelMigrationCell {
            from_level: c.from_level.clone(),
            to_level: c.to_level.clone(),
            customer_count: c.customer_count,
        }
    }
}

impl From<&ChurnRow> for pb::ChurnSignalEntry {
    fn from(r: &ChurnRow) -> Self {
        let (start, end) = (r.start_aum.unwrap_or(0), r.end_aum.unwrap_or(0));
        pb::ChurnSignalEntry {
            customer_number: r.customer_number.clone(),
            start_weighted_aum_minor: start,
            end_weighted_aum_minor: end,
            decline_bp: decline_bp(start, end),
            last_transaction_time: r.last_transaction_at.map(crm_platform::convert::timestamp),
        }
    }
}

impl From<&RmRow> for pb::RmPerformance {
    fn from(r: &RmRow) -> Self {
        pb::RmPerformance {
            rm_id: r.rm_id.clone(),
            customer_count: r.customer_count,
            start_weighted_aum_minor: r.start_aum,
            end_weighted_aum_minor: r.end_aum,
            growth_minor: r.end_aum.saturating_sub(r.start_aum),
            upgrades: r.upgrades,
            downgrades: r.downgrades,
        }
    }
}

impl From<&GroupRow> for pb::CustomerGroup {
    fn from(g: &GroupRow) -> Self {
        let key = match (&g.key_text, g.key_number) {
            (Some(text), _) => text.clone(),
            (None, Some(number)) => number.to_string(),
            (None, None) => String::new(),
        };
        pb::CustomerGroup { key, customer_count: g.customer_count, value: g.value }
    }
}

// --- Business targets ---

/// Longest org path, in characters (it is part of unique index rows).
const MAX_ORG_PATH_CHARS: usize = 500;
/// Most shares in one split.
const MAX_SHARES: usize = 1_000;

/// The org path under `field`: one line, not too long, ids between slashes.
fn org_path(problems: &mut Problems<'_>, field: &str, value: &str) -> Option<OrgPath> {
    let value = value.trim();
    if let Some(problem) = text_problem(value, MAX_ORG_PATH_CHARS, Lines::Single) {
        problems.add(field, problem);
        return None;
    }
    OrgPath::parse(value).map_err(|e| problems.add(field, e.to_string())).ok()
}

/// The assignee of a share or target under `field` (`….assignee`).
fn target_assignee(
    problems: &mut Problems<'_>,
    field: &str,
    assignee: Option<&pb::TargetAssignee>,
) -> Option<Assignee> {
    use pb::target_assignee::Assignee as Which;
    match assignee.and_then(|a| a.assignee.as_ref()) {
        None => {
            problems.add(field, "is required: an org path or an RM id");
            None
        }
        Some(Which::OrgPath(path)) => org_path(problems, &format!("{field}.org_path"), path).map(Assignee::Org),
        Some(Which::RmId(id)) => {
            let field = format!("{field}.rm_id");
            if let Some(problem) = text_problem(id.trim(), MAX_ID_CHARS, Lines::Single) {
                problems.add(&field, problem);
                return None;
            }
            RmId::parse(id).map(Assignee::Rm).map_err(|e| problems.add(&field, e.to_string())).ok()
        }
    }
}

/// The days from `start` to `end` (fields `period_start`, `period_end` under the
/// problems' prefix).
fn target_period(
    problems: &mut Problems<'_>,
    start: Option<&common::Date>,
    end: Option<&common::Date>,
) -> Option<Period> {
    let from = problems.date("period_start", start);
    let to = problems.date("period_end", end);
    let from = from.filter(|d| {
        let recent = *d >= crate::store::rules::START;
        if !recent {
            problems.add("period_start", format!("must be {} or later", crate::store::rules::START));
        }
        recent
    });
    Period::new(from?, to?).map_err(|e| problems.add("period_end", e.to_string())).ok()
}

/// The indicator of a request (fields under `indicator.`).
fn target_indicator(problems: &mut Problems<'_>, indicator: Option<&pb::TargetIndicator>) -> Option<Indicator> {
    let Some(i) = indicator else {
        problems.add("indicator", "is required");
        return None;
    };
    let (level, product) = (i.level_code.trim(), i.product_code.trim());
    let kind = pb::TargetIndicatorKind::try_from(i.kind).unwrap_or(pb::TargetIndicatorKind::Unspecified);
    let wants_level = kind == pb::TargetIndicatorKind::CustomersAtLevel;
    let wants_product = kind == pb::TargetIndicatorKind::ProductSales;
    match (wants_level, level.is_empty()) {
        (true, true) => problems.add("indicator.level_code", "is required for customers at or above a level"),
        (false, false) => problems.add("indicator.level_code", "only customers at or above a level name a level"),
        _ => {}
    }
    let product = match (wants_product, product.is_empty()) {
        (true, true) => {
            problems.add("indicator.product_code", "is required for product sales");
            None
        }
        (false, false) => {
            problems.add("indicator.product_code", "only product sales name a product");
            None
        }
        (true, false) => problems.code("indicator.product_code", product, MAX_CODE_CHARS),
        (false, true) => None,
    };
    match kind {
        pb::TargetIndicatorKind::Unspecified => {
            problems.add("indicator.kind", "must be one of the target indicators");
            None
        }
        pb::TargetIndicatorKind::AumGrowth => Some(Indicator::AumGrowth),
        pb::TargetIndicatorKind::CustomersAtLevel if !level.is_empty() => problems
            .code("indicator.level_code", level, MAX_CODE_CHARS)
            .map(|level| Indicator::CustomersAtLevel { level }),
        pb::TargetIndicatorKind::CustomersAtLevel => None,
        pb::TargetIndicatorKind::ProductSales => product.map(|product| Indicator::ProductSales { product }),
        pb::TargetIndicatorKind::NewCustomers => Some(Indicator::NewCustomers),
    }
}

/// The target of an IssueTarget request: an org's, checked in full.
pub fn issued_target(r: &pb::IssueTargetRequest) -> Result<Target, FieldViolations> {
    let mut p = Problems::new("");
    let org = org_path(&mut p, "org_path", &r.org_path);
    let indicator = target_indicator(&mut p, r.indicator.as_ref());
    let period = target_period(&mut p, r.period_start.as_ref(), r.period_end.as_ref());
    if r.value < 0 {
        p.add("value", "must be 0 or more");
    }
    let target = match (org, indicator, period) {
        (Some(org), Some(indicator), Some(period)) => {
            Some(Target { assignee: Assignee::Org(org), indicator, period, value: r.value })
        }
        _ => None,
    };
    p.finish(target)
}

/// The shares of a DecomposeTarget request, each checked (`shares[i].…`); how they add
/// up is the domain's ([`crate::domain::targets::Decomposition`]).
pub fn target_shares(shares: &[pb::TargetShare]) -> Result<Vec<(Assignee, i64)>, FieldViolations> {
    let mut p = Problems::new("");
    if shares.len() > MAX_SHARES {
        p.add("shares", format!("at most {MAX_SHARES} shares in one split"));
        return Err(p.violations);
    }
    let mut out = Vec::with_capacity(shares.len());
    for (i, share) in shares.iter().enumerate() {
        let assignee = target_assignee(&mut p, &format!("shares[{i}].assignee"), share.assignee.as_ref());
        if share.value < 0 {
            p.add(&format!("shares[{i}].value"), "must be 0 or more");
        }
        out.extend(assignee.map(|a| (a, share.value)));
    }
    p.finish(Some(out))
}

/// A target id under `field`.
pub fn target_id(field: &str, value: &str) -> Result<uuid::Uuid, FieldViolations> {
    value.trim().parse().map_err(|_| {
        let mut v = FieldViolations::new();
        v.add(field, "must be a target id (a UUID)");
        v
    })
}

/// The days of a ListTargets request.
pub fn target_days(r: &pb::ListTargetsRequest) -> Result<Period, FieldViolations> {
    let mut p = Problems::new("");
    let period = target_period(&mut p, r.period_start.as_ref(), r.period_end.as_ref());
    p.finish(period)
}

impl From<&Assignee> for pb::TargetAssignee {
    fn from(a: &Assignee) -> Self {
        use pb::target_assignee::Assignee as Which;
        let which = match a {
            Assignee::Org(path) => Which::OrgPath(path.as_str().to_string()),
            Assignee::Rm(rm) => Which::RmId(rm.as_str().to_string()),
        };
        pb::TargetAssignee { assignee: Some(which) }
    }
}

impl From<&Indicator> for pb::TargetIndicator {
    fn from(i: &Indicator) -> Self {
        let (kind, level_code, product_code) = match i {
            Indicator::AumGrowth => (pb::TargetIndicatorKind::AumGrowth, "", ""),
            Indicator::CustomersAtLevel { level } => (pb::TargetIndicatorKind::CustomersAtLevel, level.as_str(), ""),
            Indicator::ProductSales { product } => (pb::TargetIndicatorKind::ProductSales, "", product.as_str()),
            Indicator::NewCustomers => (pb::TargetIndicatorKind::NewCustomers, "", ""),
        };
        pb::TargetIndicator { kind: kind as i32, level_code: level_code.into(), product_code: product_code.into() }
    }
}

impl From<&StoredTarget> for pb::Target {
    fn from(t: &StoredTarget) -> Self {
        pb::Target {
            target_id: t.id.to_string(),
            parent_target_id: t.parent_id.map(|id| id.to_string()).unwrap_or_default(),
            root_target_id: t.root_id.to_string(),
            assignee: Some((&t.target.assignee).into()),
            indicator: Some((&t.target.indicator).into()),
            period_start: Some(crm_platform::convert::date(t.target.period.from())),
            period_end: Some(crm_platform::convert::date(t.target.period.to())),
            value: t.target.value,
            booked_at_org_path: t.booked_at.as_str().to_string(),
            split_version: t.split_version,
        }
    }
}

/// A target with its progress.
pub fn target_progress(t: &StoredTarget, p: &Progress) -> pb::TargetProgress {
    pb::TargetProgress {
        target: Some(t.into()),
        actual: p.actual,
        progress_bp: p.progress_bp.unwrap_or(0),
        has_progress: p.progress_bp.is_some(),
    }
}

// Segment membership.

/// The list name in segment-membership-change page tokens.
pub const SEGMENT_CHANGES_LIST: &str = "segment-membership-changes";

/// The segment and the time an EvaluateSegment request asks about (`None`: now); a
/// time in the future is refused.
pub fn evaluate_segment_request(
    r: &pb::EvaluateSegmentRequest,
    now: time::OffsetDateTime,
) -> Result<(Code, Option<time::OffsetDateTime>), FieldViolations> {
    let mut p = Problems::new("");
    let code = tag_code(&mut p, "segment_code", &r.segment_code);
    let as_of = r.as_of.as_ref().and_then(|t| {
        let parsed = time_of(t);
        match parsed {
            None => p.add("as_of", "must be a valid time"),
            Some(t) if t > now => p.add("as_of", "must not be in the future"),
            Some(_) => {}
        }
        parsed
    });
    match code {
        Some(code) if p.violations.is_empty() => Ok((code, as_of)),
        _ => Err(p.violations),
    }
}

/// A ListSegmentMembershipChanges request, checked.
#[derive(Debug, Clone)]
pub struct SegmentChangesRequest {
    /// The segment.
    pub code: Code,
    /// At or after (`None`: from the first).
    pub start: Option<time::OffsetDateTime>,
    /// Before (`None`: no end).
    pub end: Option<time::OffsetDateTime>,
    /// The page (its key is the position in the list).
    pub page: Page,
}

/// The segment, range and page of a ListSegmentMembershipChanges request, every bad
/// field named.
pub fn segment_changes_request(
    r: &pb::ListSegmentMembershipChangesRequest,
) -> Result<SegmentChangesRequest, FieldViolations> {
    let mut p = Problems::new("");
    let code = tag_code(&mut p, "segment_code", &r.segment_code);
    let mut time = |field: &str, t: Option<Option<time::OffsetDateTime>>| {
        if t == Some(None) {
            p.add(field, "must be a valid time");
        }
        t.flatten()
    };
    let start = time("start_time", r.start_time.as_ref().map(time_of));
    let end = time("end_time", r.end_time.as_ref().map(time_of));
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        p.add("end_time", "must not be before start_time");
    }
    let mut v = p.violations;
    let page = Page::parse(SEGMENT_CHANGES_LIST, r.page_size, &r.page_token, &mut v);
    match code {
        Some(code) if v.is_empty() => Ok(SegmentChangesRequest { code, start, end, page }),
        _ => Err(v),
    }
}

impl From<MembershipChangeKind> for pb::SegmentMembershipChangeKind {
    fn from(k: MembershipChangeKind) -> Self {
        match k {
            MembershipChangeKind::Entered => pb::SegmentMembershipChangeKind::Entered,
            MembershipChangeKind::Left => pb::SegmentMembershipChangeKind::Left,
        }
    }
}

impl From<&ChangeRow> for pb::SegmentMembershipChange {
    fn from(c: &ChangeRow) -> Self {
        pb::SegmentMembershipChange {
            segment_code: c.segment_code.clone(),
            customer_number: c.customer_number.clone(),
            kind: pb::SegmentMembershipChangeKind::from(c.kind) as i32,
            time: Some(crm_platform::convert::timestamp(c.at)),
            segment_version: c.segment_version,
        }
    }
}

impl From<&StayRow> for pb::SegmentStay {
    fn from(s: &StayRow) -> Self {
        pb::SegmentStay {
            segment_code: s.segment_code.clone(),
            segment_name: s.segment_name.clone(),
            entered_time: Some(crm_platform::convert::timestamp(s.entered_at)),
            entered_version: s.entered_version,
            left_time: s.left_at.map(crm_platform::convert::timestamp),
            left_version: s.left_version.unwrap_or(0),
        }
    }
}
