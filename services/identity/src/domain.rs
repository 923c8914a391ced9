//! Identity's rules: pure, no I/O.

use crm_platform::FieldViolations;
use crm_platform::auth::DataScope;

/// Org ids: stable codes chosen by the bank.
pub fn valid_org_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Logins and client ids.
pub fn valid_login(login: &str) -> bool {
    (3..=64).contains(&login.len()) && login.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Custom role codes: upper case, e.g. `BRANCH_AUDITOR`.
pub fn valid_role_code(code: &str) -> bool {
    let mut chars = code.chars();
    (2..=32).contains(&code.len())
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Permissions look like `area.thing[.action]`: lower-case words joined by dots.
pub fn valid_permission(p: &str) -> bool {
    let parts: Vec<&str> = p.split('.').collect();
    parts.len() >= 2
        && p.len() <= 64
        && parts.iter().all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
}

/// The path of a child of the org at `parent_path`.
pub fn child_path(parent_path: &str, org_id: &str) -> String {
    format!("{parent_path}{org_id}/")
}

/// The path of the root org.
pub fn root_path(org_id: &str) -> String {
    format!("/{org_id}/")
}

/// Whether `path` lies inside the subtree at `root` (the root itself included).
pub fn within(path: &str, root: &str) -> bool {
    path.starts_with(root)
}

/// The new path of an org at `path` when the subtree at `old_root` moves to `new_root`.
pub fn moved_path(path: &str, old_root: &str, new_root: &str) -> Option<String> {
    path.strip_prefix(old_root).map(|rest| format!("{new_root}{rest}"))
}

/// Checks a new password against the policy: at least 12 characters, three of the four
/// classes (upper, lower, digit, other), and not containing the login.
pub fn check_password(field: &str, password: &str, login: &str, v: &mut FieldViolations) {
    if password.chars().count() < 12 {
        v.add(field, "must be at least 12 characters");
    }
    if password.chars().count() > 128 {
        v.add(field, "must be at most 128 characters");
    }
    let classes = [
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < 3 {
        v.add(field, "must mix at least three of: upper-case letters, lower-case letters, digits, symbols");
    }
    if !login.is_empty() && password.to_lowercase().contains(&login.to_lowercase()) {
        v.add(field, "must not contain the login");
    }
}

/// What a failed login does to the counter: the new count, and whether the user is
/// now locked (the count restarts after a lock).
pub fn after_failure(failed_attempts: i32, threshold: i32) -> (i32, bool) {
    let count = failed_attempts + 1;
    if count >= threshold { (0, true) } else { (count, false) }
}

/// Whether a lock set until `locked_until` still holds at `now`.
pub fn is_locked(locked_until: Option<time::OffsetDateTime>, now: time::OffsetDateTime) -> bool {
    locked_until.is_some_and(|until| until > now)
}

/// The permissions and scope of a set of roles: union of permissions (sorted), widest
/// scope. No role: no permission, own scope.
pub fn combine_roles<'a>(roles: impl IntoIterator<Item = (&'a [String], DataScope)>) -> (Vec<String>, DataScope) {
    let mut perms = std::collections::BTreeSet::new();
    let mut scope = DataScope::Own;
    for (role_perms, role_scope) in roles {
        perms.extend(role_perms.iter().cloned());
        scope = scope.max(role_scope);
    }
    (perms.into_iter().collect(), scope)
}

/// Why a login was refused. The caller only ever learns that it failed
/// (`Error::LoginFailed`); the reason goes to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// No principal of that kind has the login (or the login cannot exist).
    UnknownLogin,
    /// The principal is disabled.
    Disabled,
    /// A lock from earlier failures still holds.
    Locked,
    /// The password or client secret does not match.
    WrongSecret,
}

impl LoginRefusal {
    /// The reason as the audit trail records it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefusal::UnknownLogin => "unknown login",
            LoginRefusal::Disabled => "disabled",
            LoginRefusal::Locked => "locked",
            LoginRefusal::WrongSecret => "wrong secret",
        }
    }

    /// Whether this refusal counts towards a lock: only a wrong secret does; attempts
    /// on an unknown, disabled or locked account change no counter.
    pub fn counts_toward_lock(self) -> bool {
        self == LoginRefusal::WrongSecret
    }
}

/// Why a login is refused, if it is: an unknown login, then a disabled account, then
/// a lock still holding at `now`, then a wrong secret. `account` is the login's
/// (disabled, locked until), if it exists. The caller checks the secret even when the
/// answer is known without it, so that every refusal costs the same.
pub fn login_refusal(
    account: Option<(bool, Option<time::OffsetDateTime>)>,
    secret_matches: bool,
    now: time::OffsetDateTime,
) -> Option<LoginRefusal> {
    match account {
        None => Some(LoginRefusal::UnknownLogin),
        Some((true, _)) => Some(LoginRefusal::Disabled),
        Some((false, locked_until)) if is_locked(locked_until, now) => Some(LoginRefusal::Locked),
        Some(_) if !secret_matches => Some(LoginRefusal::WrongSecret),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_their_formats() {
        for (id, ok) in [("HO", true), ("BJ-01", true), ("bj_01", true), ("", false), ("B J", false), ("分行", false)]
        {
            assert_eq!(valid_org_id(id), ok, "org id {id:?}");
        }
        assert!(!valid_org_id(&"X".repeat(33)));
        for (login, ok) in [("alice", true), ("a.li-ce_1", true), ("al", false), ("al ice", false), ("张三", false)] {
            assert_eq!(valid_login(login), ok, "login {login:?}");
        }
        for (code, ok) in [("RM", true), ("BRANCH_AUDITOR2", true), ("rm", false), ("R", false), ("1RM", false)] {
            assert_eq!(valid_role_code(code), ok, "role {code:?}");
        }
        for (p, ok) in [
            ("customer.read", true),
            ("customer.pii.read", true),
            ("marketing.task_plan.approve", true),
            ("customer", false),
            ("Customer.read", false),
            ("customer..read", false),
            ("customer.read.", false),
            ("cust0mer.read", false),
        ] {
            assert_eq!(valid_permission(p), ok, "permission {p:?}");
        }
    }

    #[test]
    fn paths_nest_and_move_as_prefixes() {
        assert_eq!(root_path("HO"), "/HO/");
        assert_eq!(child_path("/HO/", "BJ"), "/HO/BJ/");
        assert!(within("/HO/BJ/BJ01/", "/HO/BJ/"));
        assert!(within("/HO/BJ/", "/HO/BJ/"));
        assert!(!within("/HO/BJX/", "/HO/BJ/"), "a sibling whose id starts the same is not inside");
        assert_eq!(moved_path("/HO/BJ/BJ01/X/", "/HO/BJ/BJ01/", "/HO/SH/BJ01/").as_deref(), Some("/HO/SH/BJ01/X/"));
        assert_eq!(moved_path("/HO/SH/", "/HO/BJ/", "/HO/SH/BJ/"), None);
    }

    #[test]
    fn the_password_policy_names_every_problem() {
        let cases: &[(&str, &str, usize)] = &[
            ("Correct-Horse-9", "alice", 0),
            ("correcthorsebattery9", "alice", 1), // two classes only
            ("short1A!", "alice", 1),
            ("alllowercaseletters", "alice", 1),
            ("Alice-Is-Great-1", "alice", 1),
            ("abc", "alice", 2),
        ];
        for (password, login, expected) in cases {
            let mut v = FieldViolations::new();
            check_password("password", password, login, &mut v);
            let count = v.iter().count();
            assert_eq!(count, *expected, "{password:?}: {v:?}");
        }
    }

    #[test]
    fn the_threshold_th_failure_locks_and_restarts_the_count() {
        // (failed so far, threshold) → (new count, locked now)
        let cases = [((0, 5), (1, false)), ((3, 5), (4, false)), ((4, 5), (0, true)), ((0, 1), (0, true))];
        for ((failed, threshold), expected) in cases {
            assert_eq!(after_failure(failed, threshold), expected, "{failed} failures, threshold {threshold}");
        }
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let lock = time::Duration::seconds(900);
        let cases = [
            (None, false),
            (Some(now + lock), true),
            (Some(now + time::Duration::milliseconds(1)), true),
            (Some(now), false), // expires exactly now
            (Some(now - lock), false),
        ];
        for (until, locked) in cases {
            assert_eq!(is_locked(until, now), locked, "locked until {until:?}");
        }
    }

    #[test]
    fn roles_combine_to_the_union_of_permissions_and_the_widest_scope() {
        let rm = vec!["customer.read".to_string()];
        let sup = vec!["customer.read".to_string(), "customer.assign".to_string()];
        let (perms, scope) = combine_roles([(rm.as_slice(), DataScope::Own), (sup.as_slice(), DataScope::Subtree)]);
        assert_eq!(perms, vec!["customer.assign", "customer.read"]);
        assert_eq!(scope, DataScope::Subtree);
        let (perms, scope) = combine_roles(std::iter::empty());
        assert!(perms.is_empty());
        assert_eq!(scope, DataScope::Own);
    }

    #[test]
    fn only_a_wrong_secret_counts_towards_a_lock() {
        let cases = [
            (LoginRefusal::UnknownLogin, "unknown login", false),
            (LoginRefusal::Disabled, "disabled", false),
            (LoginRefusal::Locked, "locked", false),
            (LoginRefusal::WrongSecret, "wrong secret", true),
        ];
        for (refusal, recorded, counts) in cases {
            assert_eq!(refusal.as_str(), recorded);
            assert_eq!(refusal.counts_toward_lock(), counts, "{refusal:?}");
        }
    }

    #[test]
    fn a_login_is_refused_for_the_first_reason_that_applies() {
        let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let locked = Some(now + time::Duration::minutes(1));
        let expired = Some(now - time::Duration::minutes(1));
        // (account: (disabled, locked until), secret matches) → refusal
        let cases = [
            (None, true, Some(LoginRefusal::UnknownLogin)),
            (None, false, Some(LoginRefusal::UnknownLogin)),
            (Some((true, locked)), true, Some(LoginRefusal::Disabled)),
            (Some((true, None)), false, Some(LoginRefusal::Disabled)),
            (Some((false, locked)), true, Some(LoginRefusal::Locked)),
            (Some((false, locked)), false, Some(LoginRefusal::Locked)),
            (Some((false, expired)), false, Some(LoginRefusal::WrongSecret)),
            (Some((false, None)), false, Some(LoginRefusal::WrongSecret)),
            (Some((false, expired)), true, None),
            (Some((false, None)), true, None),
        ];
        for (account, matches, expected) in cases {
            assert_eq!(login_refusal(account, matches, now), expected, "{account:?}, secret matches: {matches}");
        }
    }
}
