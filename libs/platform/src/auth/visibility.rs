//! Which customers a caller may see: the caller's data scope turned into what a
//! service's SQL filters by. Every service that shows customers (customer-profile's
//! parties, analytics' values) filters with it, against its own copy of assignments
//! and of the org tree.

use super::{Caller, DataScope};

/// The customers a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every customer.
    All,
    /// Customers whose home org lies under this org path.
    Subtree(String),
    /// Customers of this org.
    Org(String),
    /// Customers this user is primary or related RM of.
    Own(String),
}

impl Default for Visibility {
    /// Nothing is visible unless a scope says so (the RM of no one).
    fn default() -> Self {
        Visibility::Own(String::new())
    }
}

impl Visibility {
    /// The customers `caller` may see, from its token's scope.
    pub fn of(caller: &Caller) -> Self {
        let c = &caller.claims;
        match c.scope {
            DataScope::All => Visibility::All,
            DataScope::Subtree => Visibility::Subtree(c.org_path.clone()),
            DataScope::Org => Visibility::Org(c.org.clone()),
            DataScope::Own => Visibility::Own(c.sub.clone()),
        }
    }

    /// The `(scope, arg)` pair the services' SQL visibility functions take: `all`,
    /// `subtree` + org path, `org` + org id, `own` + the user's subject.
    pub fn sql_args(&self) -> (&'static str, &str) {
        match self {
            Visibility::All => ("all", ""),
            Visibility::Subtree(path) => ("subtree", path),
            Visibility::Org(org) => ("org", org),
            Visibility::Own(subject) => ("own", subject),
        }
    }
}
