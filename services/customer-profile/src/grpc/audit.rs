//! The access audit trail: who viewed or changed which customer, when and from where.
//! Reading it needs `customer.audit.read` (checked by the policy); it is not limited
//! by data scope.

use crm_platform::FieldViolations;
use crm_platform::paging::Page;
use crm_proto::crm::customer::v1 as pb;
use tonic::{Request, Response, Status};

use super::CustomerApi;
use crate::convert::non_empty;
use crate::error::Error;
use crate::store;

pub(super) async fn list_access_audit(
    api: &CustomerApi,
    request: Request<pb::ListAccessAuditRequest>,
) -> Result<Response<pb::ListAccessAuditResponse>, Status> {
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let page = Page::parse("access-audit", r.page_size, &r.page_token, &mut v);
    v.into_result().map_err(Error::Invalid)?;
    let rows = store::audit_trail(
        &api.pool,
        non_empty(&r.customer_number).as_deref(),
        non_empty(&r.actor).as_deref(),
        page.position(),
        page.size,
    )
    .await?;
    let next = page.next_token(&rows, |a| a.audit_id);
    let entries = rows.into_iter().map(pb::AccessAuditEntry::from).collect();
    Ok(Response::new(pb::ListAccessAuditResponse { entries, next_page_token: next }))
}
