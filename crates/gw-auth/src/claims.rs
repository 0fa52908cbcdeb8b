//! The verified token's claims (the seed's JWT contract) and their conversion into a
//! [`Principal`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gw_core::{Principal, PrincipalData, TrialInfo};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AuthError;

/// Role name of a governor: `governor`.
pub const GOVERNOR_ROLE: &str = "governor";

/// The claims of a verified token.
///
/// Required: `sub`, `user_id`, `email`, `customer_id`, `roles` (a list, may be empty),
/// `iat`, `exp`, `iss`. Optional: `governor_agent_id`, `trial_mode`, `trial_expires_at`
/// (Unix seconds or an RFC 3339 / ISO 8601 date-time), `nbf`, `aud`. Everything else is
/// kept in [`Claims::extra`]. The layer inserts an `Arc<Claims>` into the request
/// extensions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claims {
    /// Subject (`sub`).
    pub sub: String,
    /// Application user id (`user_id`).
    pub user_id: String,
    /// E-mail address (`email`).
    pub email: String,
    /// Tenant (`customer_id`).
    pub customer_id: String,
    /// Roles (`roles`).
    pub roles: Arc<[String]>,
    /// Issued at, Unix seconds (`iat`).
    pub iat: i64,
    /// Expires at, Unix seconds (`exp`).
    pub exp: i64,
    /// Not before, Unix seconds (`nbf`), if present.
    pub nbf: Option<i64>,
    /// Issuer (`iss`).
    pub iss: String,
    /// Audiences (`aud`, a string or a list); empty when absent.
    pub aud: Vec<String>,
    /// Governor agent acting for the user (`governor_agent_id`).
    pub governor_agent_id: Option<String>,
    /// Whether the user is on a trial plan (`trial_mode`, default `false`).
    pub trial_mode: bool,
    /// When the trial ends (`trial_expires_at`).
    #[serde(serialize_with = "ser_time")]
    pub trial_expires_at: Option<SystemTime>,
    /// Every other claim, as JSON.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// Whether `roles` contains `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user holds the `admin` role.
    pub fn is_admin(&self) -> bool {
        self.has_role(gw_core::identity::ADMIN_ROLE)
    }

    /// Whether the user is a governor: holds the `governor` role or acts for a governor
    /// agent (`governor_agent_id` set).
    pub fn is_governor(&self) -> bool {
        self.has_role(GOVERNOR_ROLE) || self.governor_agent_id.is_some()
    }

    /// Whether the user is on a trial that has ended at `now` (an open-ended trial never
    /// expires; a non-trial user is never trial-expired).
    pub fn is_trial_expired(&self, now: SystemTime) -> bool {
        self.trial_mode && self.trial_expires_at.is_some_and(|at| at <= now)
    }

    /// An extra claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    /// The caller as the other gw layers see it.
    pub fn principal(&self) -> Principal {
        Principal::from(PrincipalData {
            sub: self.sub.as_str().into(),
            user_id: self.user_id.as_str().into(),
            email: self.email.as_str().into(),
            customer_id: self.customer_id.as_str().into(),
            roles: self.roles.clone(),
            governor_agent_id: self.governor_agent_id.as_deref().map(Arc::from),
            trial: self.trial_mode.then_some(TrialInfo {
                expires_at: self.trial_expires_at,
            }),
        })
    }
}

fn ser_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&gw_core::clock::unix_seconds(*t)),
        None => s.serialize_none(),
    }
}

/// Claims as they come off the wire, before required-claim checks.
#[derive(Debug, Deserialize)]
pub(crate) struct RawClaims {
    sub: Option<String>,
    user_id: Option<String>,
    email: Option<String>,
    customer_id: Option<String>,
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "numeric_date")]
    iat: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<i64>,
    pub(crate) iss: Option<String>,
    #[serde(default, deserialize_with = "audience")]
    pub(crate) aud: Vec<String>,
    governor_agent_id: Option<String>,
    trial_mode: Option<bool>,
    trial_expires_at: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl RawClaims {
    /// Applies the contract: every required claim present and non-empty.
    pub(crate) fn into_claims(self) -> Result<Claims, AuthError> {
        fn text(v: Option<String>) -> Result<String, AuthError> {
            match v {
                None => Err(AuthError::invalid("missing-claim")),
                Some(s) if s.trim().is_empty() => Err(AuthError::invalid("empty-claim")),
                Some(s) => Ok(s),
            }
        }
        let missing = || AuthError::invalid("missing-claim");
        let roles = self.roles.ok_or_else(missing)?;
        if roles.iter().any(|r| r.trim().is_empty()) {
            return Err(AuthError::invalid("empty-claim"));
        }
        let trial_expires_at = match self.trial_expires_at {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_time(&v).ok_or(AuthError::invalid("bad-claim"))?),
        };
        Ok(Claims {
            sub: text(self.sub)?,
            user_id: text(self.user_id)?,
            email: text(self.email)?,
            customer_id: text(self.customer_id)?,
            roles: roles.into(),
            iat: self.iat.ok_or_else(missing)?,
            exp: self.exp.ok_or_else(missing)?,
            nbf: self.nbf,
            iss: text(self.iss)?,
            aud: self.aud,
            governor_agent_id: self.governor_agent_id.filter(|g| !g.is_empty()),
            trial_mode: self.trial_mode.unwrap_or(false),
            trial_expires_at,
            extra: self.extra,
        })
    }
}

/// A NumericDate (RFC 7519): a JSON number of seconds, fractions truncated.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| de::Error::custom("NumericDate out of range")),
        Some(_) => Err(de::Error::custom("NumericDate must be a number")),
    }
}

fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(a)) => a,
    })
}

/// Unix seconds (number) or an RFC 3339 date-time (`Z`, an offset, or none for UTC).
fn parse_time(v: &Value) -> Option<SystemTime> {
    let secs = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => parse_rfc3339(s)?,
        _ => return None,
    };
    Some(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    })
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            if r.len() != 5 || r.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i64 = r[0..2].parse().ok()?;
            let om: i64 = r[3..5].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days =
        gw_core::calendar::days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Result<Claims, AuthError> {
        serde_json::from_value::<RawClaims>(v)
            .map_err(|_| AuthError::invalid("malformed"))?
            .into_claims()
    }

    fn base() -> Value {
        json!({"sub": "u1", "user_id": "u1", "email": "a@b.c", "customer_id": "c1",
               "roles": ["admin"], "iat": 1, "exp": 2.5, "iss": "https://iss",
               "aud": "api", "tenant_tier": "gold"})
    }

    #[test]
    fn contract_and_helpers() {
        let c = raw(base()).unwrap();
        assert_eq!(c.exp, 2);
        assert_eq!(c.aud, ["api"]);
        assert_eq!(c.get("tenant_tier").unwrap(), "gold");
        assert!(c.is_admin() && !c.is_governor() && !c.is_trial_expired(SystemTime::now()));
        assert_eq!(c.principal().trial, None);

        let mut v = base();
        v["governor_agent_id"] = json!("gov-1");
        v["trial_mode"] = json!(true);
        v["trial_expires_at"] = json!("2025-01-31T12:00:00+01:00");
        let c = raw(v).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_738_321_200);
        assert_eq!(c.trial_expires_at, Some(at));
        assert!(c.is_governor());
        assert!(c.is_trial_expired(at) && !c.is_trial_expired(at - Duration::from_secs(1)));
        assert!(c.principal().is_trial());
    }

    #[test]
    fn required_claims() {
        for name in [
            "sub",
            "user_id",
            "email",
            "customer_id",
            "roles",
            "iat",
            "exp",
            "iss",
        ] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(name);
            assert_eq!(raw(v).unwrap_err().reason(), "missing-claim", "{name}");
        }
        let mut v = base();
        v["customer_id"] = json!("");
        assert_eq!(raw(v).unwrap_err().reason(), "empty-claim");
        let mut v = base();
        v["exp"] = json!("2030-01-01");
        assert!(raw(v).is_err());
        let mut v = base();
        v["trial_expires_at"] = json!("soon");
        assert_eq!(raw(v).unwrap_err().reason(), "bad-claim");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00.123Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59"), Some(1_709_251_199));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59-00:30"),
            Some(1_709_252_999)
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01"), None);
    }
}
