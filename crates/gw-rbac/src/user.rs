//! What the layer hands to handlers: [`UserInfo`] and its [`Permissions`].

use std::sync::Arc;

use http::HeaderName;

/// Response header with the caller's user id: `X-RBAC-User-ID`.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-rbac-user-id");
/// Response header with the caller's roles, comma-separated: `X-RBAC-Roles`.
pub const ROLES_HEADER: HeaderName = HeaderName::from_static("x-rbac-roles");
/// Response header with the caller's highest role level: `X-RBAC-Role-Level`.
pub const ROLE_LEVEL_HEADER: HeaderName = HeaderName::from_static("x-rbac-role-level");

pub(crate) type Bits = [u64; 4];

#[derive(Debug, Clone)]
enum Repr {
    /// Indices into the policy's permission table.
    Table { names: Arc<[Arc<str>]>, bits: Bits },
    /// A list as a remote engine returned it (sorted, deduplicated).
    List(Arc<[Arc<str>]>),
}

/// A caller's effective permissions (`resource:action`); cheap to clone.
#[derive(Debug, Clone)]
pub struct Permissions(Repr);

impl Permissions {
    /// No permissions.
    pub fn empty() -> Self {
        Self(Repr::List(Arc::from([])))
    }

    pub(crate) fn from_bits(names: Arc<[Arc<str>]>, bits: Bits) -> Self {
        Self(Repr::Table { names, bits })
    }

    /// Permissions from a list of names.
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v: Vec<Arc<str>> = names.into_iter().map(|s| Arc::from(s.as_ref())).collect();
        v.sort();
        v.dedup();
        Self(Repr::List(v.into()))
    }

    /// Whether `permission` (`resource:action`) is held.
    pub fn contains(&self, permission: &str) -> bool {
        self.iter().any(|p| p == permission)
    }

    /// The permissions, in name order for a list and table order for a table.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (table, bits, list): (&[Arc<str>], Option<Bits>, &[Arc<str>]) = match &self.0 {
            Repr::Table { names, bits } => (names, Some(*bits), &[]),
            Repr::List(list) => (&[], None, list),
        };
        let from_table = table
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits.is_some_and(|b| b[i / 64] >> (i % 64) & 1 == 1))
            .map(|(_, n)| &**n);
        from_table.chain(list.iter().map(|n| &**n))
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Table { bits, .. } => bits.iter().map(|w| w.count_ones() as usize).sum(),
            Repr::List(list) => list.len(),
        }
    }

    /// Whether no permission is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The permissions as a sorted list of names.
    pub fn to_sorted_vec(&self) -> Vec<String> {
        let mut v: Vec<String> = self.iter().map(str::to_owned).collect();
        v.sort();
        v
    }
}

impl PartialEq for Permissions {
    /// Set equality, whatever the representation.
    fn eq(&self, other: &Self) -> bool {
        self.to_sorted_vec() == other.to_sorted_vec()
    }
}

impl Eq for Permissions {}

/// The authorized caller, put into the request extensions by the RBAC layer when a request
/// is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Application user id (from the `Principal`).
    pub user_id: Arc<str>,
    /// E-mail address (from the `Principal`).
    pub email: Arc<str>,
    /// Role names, as granted.
    pub roles: Arc<[String]>,
    /// Level of the caller's highest known role (1 = highest); `None` only when a remote
    /// engine allowed without naming one.
    pub role_level: Option<u8>,
    /// Whether the caller holds the `admin` role.
    pub is_admin: bool,
    /// Effective permissions under the current policy.
    pub permissions: Permissions,
}

impl UserInfo {
    /// Whether the caller holds `permission` (`resource:action`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// Whether the caller holds `role` (exactly that role name).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_list_agree() {
        let names: Arc<[Arc<str>]> = ["a:read", "a:write", "b:read"].map(Arc::from).into();
        let mut bits = [0u64; 4];
        bits[0] = 0b101;
        let t = Permissions::from_bits(names, bits);
        let l = Permissions::from_names(["b:read", "a:read", "a:read"]);
        assert_eq!(t, l);
        assert_eq!(t.len(), 2);
        assert!(t.contains("b:read") && !t.contains("a:write"));
        assert!(Permissions::empty().is_empty());
        assert_ne!(t, Permissions::empty());
    }
}
