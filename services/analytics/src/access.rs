//! Who may call what (docs/auth.md).
//!
//! [`POLICY`] is the one table mapping every RPC of `crm.analytics.v1.AnalyticsService`
//! to the permission it needs; the kit's auth layer enforces it before a handler runs
//! (an RPC missing here is refused).

use crm_platform::auth::{Policy, Requirement};

macro_rules! rpc {
    ($method:literal, $permission:expr) => {
        (concat!("/crm.analytics.v1.AnalyticsService/", $method), Requirement::Permission($permission))
    };
}

/// Reading customer value, levels, rules, the catalogue, tags and segments (and
/// evaluating a segment), the analyses, business targets and their progress.
pub const READ: &str = "analytics.read";
/// Feeding facts: catalogue, FX rates, balances, transactions.
pub const INGEST: &str = "analytics.ingest";
/// Defining level rules, tags, segments, scorecards and the RFM window, setting manual tags, closing months,
/// recomputing.
pub const DEFINE: &str = "analytics.define";

/// Issuing business targets and decomposing them (inside the caller's data scope).
pub const TARGETS: &str = "analytics.targets";

/// Permission per RPC.
pub const POLICY: Policy = &[
    rpc!("UpsertProducts", INGEST),
    rpc!("ListProducts", READ),
    rpc!("SetFxRates", INGEST),
    rpc!("LoadBalances", INGEST),
    rpc!("RecordTransactions", INGEST),
    rpc!("GetCustomerValue", READ),
    rpc!("ListLevelHistory", READ),
    rpc!("GetLevelOn", READ),
    rpc!("PutLevelRule", DEFINE),
    rpc!("ListLevelRules", READ),
    rpc!("CloseMonth", DEFINE),
    rpc!("RecomputeAll", DEFINE),
    rpc!("DefineTag", DEFINE),
    rpc!("ListTags", READ),
    rpc!("SetManualTag", DEFINE),
    rpc!("RemoveManualTag", DEFINE),
    rpc!("GetCustomerTags", READ),
    rpc!("ExplainTag", READ),
    rpc!("DefineSegment", DEFINE),
    rpc!("EvaluateSegment", READ),
    rpc!("StreamSegmentSnapshot", READ),
    rpc!("GetCustomerRfm", READ),
    rpc!("SetRfmWindow", DEFINE),
    rpc!("DefineScorecard", DEFINE),
    rpc!("ListScorecards", READ),
    rpc!("GetCustomerScore", READ),
    rpc!("GetAumByOrg", READ),
    rpc!("GetLevelMigration", READ),
    rpc!("ListChurnSignals", READ),
    rpc!("GetRmPerformance", READ),
    rpc!("AggregateCustomers", READ),
    rpc!("IssueTarget", TARGETS),
    rpc!("DecomposeTarget", TARGETS),
    rpc!("ListTargets", READ),
    rpc!("GetTargetProgress", READ),
    rpc!("ListCustomerSegmentHistory", READ),
    rpc!("ListSegmentMembershipChanges", READ),
];
