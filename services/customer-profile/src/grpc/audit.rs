//! The access audit trail: who viewed or changed which customer, when and from where.
//! Reading it needs `customer.audit.read` (checked by the policy); it is not limited
//! by data scope.

use crm_platform::FieldViolations;
use crm_platform::audit::Filter;
use crm_platform::paging::Page;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::CustomerApi;
use crate::convert::{self, non_empty};
use crate::error::Error;

pub(super) async fn list_access_audit(
    api: &CustomerApi,
    request: Request<pb::ListAccessAuditRequest>,
) -> Result<Response<pb::ListAccessAuditResponse>, Status> {
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("access-audit", r.page_size, &r.page_token, &mut v);
    let filter = Filter {
        actor: non_empty(&r.actor),
        subject: non_empty(&r.customer_number),
        action: non_empty(&r.action),
        from: instant("occurred_from", r.occurred_from.as_ref(), &mut v),
        until: instant("occurred_before", r.occurred_before.as_ref(), &mut v),
    };
    v.into_result().map_err(Error::Invalid)?;
    let rows = crm_platform::audit::read(&api.pool, &filter, &page).await.map_err(Error::Database)?;
    let next = page.next_token(&rows, |a| a.audit_id);
    let entries = rows.into_iter().map(convert::access_audit_entry).collect();
    Ok(Response::new(pb::ListAccessAuditResponse { entries, next_page_token: next }))
}

/// A filter instant; a malformed one is a violation of `field`.
fn instant(field: &str, t: Option<&prost_types::Timestamp>, v: &mut FieldViolations) -> Option<time::OffsetDateTime> {
    let time = crm_platform::convert::time_of(t?);
    if time.is_none() {
        v.add(field, "is not a valid instant");
    }
    time
}
