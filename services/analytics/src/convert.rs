//! Wire ↔ domain: requests become checked domain values here, once (each problem a
//! field violation under the path the caller sent); stored values become proto
//! messages here, once.

use crm_platform::FieldViolations;
use crm_platform::convert::{Money, date_of, time_of};
use crm_platform::validate::{Lines, text_problem};
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;

use crate::domain::aum::{AssetClass, Weights};
use crate::domain::facts::{BalanceSnapshot, Channel, CustomerRef, Product, Transaction};
use crate::domain::levels::{DowngradeTarget, LevelDef, LevelRule, UpgradeTiming};
use crate::domain::tags::{Code, SegmentDefinition, TagDefinition, TagKind, TagSource, check_tag_rule};
use crate::domain::target_progress::Progress;
use crate::domain::targets::{Assignee, Indicator, OrgPath, Period, RmId, Target};
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

// Business targets.

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
