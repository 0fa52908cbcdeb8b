//! The key file format shared by [`DirKeyStore`](crate::DirKeyStore) (one file per service)
//! and [`ServiceClient::from_env`](crate::ServiceClient::from_env) (`SERVICE_KEY_FILE`).
//!
//! ```text
//! # /etc/autobot/service-keys/npu-worker.env
//! SERVICE_KEY=9f2c...                    # required; its UTF-8 bytes are the HMAC key
//! SERVICE_KEY_ID=k2                      # default "primary"
//! SERVICE_KEY_EXPIRES_AT=1767225600      # unix seconds up to year 9999, optional
//! SERVICE_KEY_STATE=active               # active | verify_only | revoked, default active
//! SERVICE_KEY_PREVIOUS=71ab...           # optional: the old key, verify-only, during rotation
//! SERVICE_KEY_PREVIOUS_ID=k1
//! SERVICE_KEY_PREVIOUS_EXPIRES_AT=1764633600
//! SERVICE_KEY_REVOKED_IDS=k0             # optional: comma-separated revoked key ids
//! ```
//!
//! Blank lines, `#` comments, an `export ` prefix and single or double quotes around a
//! value are accepted; other names are ignored.

use std::fmt;
use std::time::SystemTime;

use crate::keys::{KeyRing, KeyState, MAX_EXPIRY_UNIX, ServiceKey, expiry_from_unix};
use crate::wire::valid_id;

/// Key id used when a key file has no `SERVICE_KEY_ID`.
pub const DEFAULT_KEY_ID: &str = "primary";

/// A key file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError(pub String);

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid key file: {}", self.0)
    }
}

impl std::error::Error for KeyFileError {}

/// `NAME=value` pairs of an env file, in order.
pub fn parse_env(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = ['"', '\'']
            .into_iter()
            .find_map(|q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
            .unwrap_or(value);
        out.push((name.trim(), value));
    }
    out
}

/// Parses a key file into the key ring of `service_id`.
pub fn parse_key_file(service_id: &str, text: &str) -> Result<KeyRing, KeyFileError> {
    let vars = parse_env(text);
    let get = |name: &str| vars.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let id = |name: &str, default: &str| -> Result<String, KeyFileError> {
        let id = get(name).unwrap_or(default);
        if valid_id(id) {
            Ok(id.to_owned())
        } else {
            Err(KeyFileError(format!("{name} is not a valid key id")))
        }
    };
    let expiry = |name: &str| -> Result<Option<SystemTime>, KeyFileError> {
        get(name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .and_then(expiry_from_unix)
                    .ok_or_else(|| {
                        KeyFileError(format!(
                            "{name} must be unix seconds, at most {MAX_EXPIRY_UNIX} (year 9999)"
                        ))
                    })
            })
            .transpose()
    };
    let with_expiry = |key: ServiceKey, name: &str| -> Result<ServiceKey, KeyFileError> {
        Ok(match expiry(name)? {
            Some(at) => key.expires_at(at),
            None => key,
        })
    };

    let secret = get("SERVICE_KEY")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| KeyFileError("SERVICE_KEY is missing or empty".into()))?;
    let state = match get("SERVICE_KEY_STATE") {
        Some(s) => s.parse::<KeyState>().map_err(KeyFileError)?,
        None => KeyState::Active,
    };
    let current = ServiceKey::new(id("SERVICE_KEY_ID", DEFAULT_KEY_ID)?, secret).state(state);
    let mut ring = KeyRing::new(service_id);
    if let Some(prev) = get("SERVICE_KEY_PREVIOUS").filter(|s| !s.is_empty()) {
        let key = ServiceKey::new(id("SERVICE_KEY_PREVIOUS_ID", "previous")?, prev)
            .state(KeyState::VerifyOnly);
        ring = ring.key(with_expiry(key, "SERVICE_KEY_PREVIOUS_EXPIRES_AT")?);
    }
    ring = ring.key(with_expiry(current, "SERVICE_KEY_EXPIRES_AT")?);
    if let Some(list) = get("SERVICE_KEY_REVOKED_IDS") {
        for revoked in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !valid_id(revoked) {
                return Err(KeyFileError(
                    "SERVICE_KEY_REVOKED_IDS holds an invalid id".into(),
                ));
            }
            ring = ring.key(ServiceKey::new(revoked, "").state(KeyState::Revoked));
        }
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_layout_and_rotation_fields() {
        let ring = parse_key_file(
            "npu-worker",
            "# keys\nexport SERVICE_KEY=\"abc123\"\nSERVICE_KEY_ID=k2\nSERVICE_KEY_EXPIRES_AT=2000\n\
             SERVICE_KEY_PREVIOUS='old'\nSERVICE_KEY_PREVIOUS_ID=k1\nSERVICE_KEY_REVOKED_IDS=k0, kx\n",
        )
        .unwrap();
        assert_eq!(&**ring.service_id(), "npu-worker");
        let k2 = ring.find("k2").unwrap();
        assert_eq!(k2.secret().expose(), b"abc123");
        assert_eq!(k2.current_state(), KeyState::Active);
        assert!(k2.expiry().is_some());
        assert_eq!(
            ring.find("k1").unwrap().current_state(),
            KeyState::VerifyOnly
        );
        assert_eq!(ring.find("kx").unwrap().current_state(), KeyState::Revoked);

        let plain = parse_key_file("a", "SERVICE_KEY=xyz").unwrap();
        assert_eq!(plain.keys().len(), 1);
        assert!(plain.find(DEFAULT_KEY_ID).is_some());
    }

    #[test]
    fn refuses_broken_files() {
        for bad in [
            "",
            "SERVICE_KEY=",
            "SERVICE_KEY=a\nSERVICE_KEY_ID=../x",
            "SERVICE_KEY=a\nSERVICE_KEY_EXPIRES_AT=tomorrow",
            "SERVICE_KEY=a\nSERVICE_KEY_EXPIRES_AT=18446744073709551615",
            "SERVICE_KEY=a\nSERVICE_KEY_EXPIRES_AT=9223372036854775808",
            "SERVICE_KEY=a\nSERVICE_KEY_EXPIRES_AT=1767225600000",
            "SERVICE_KEY=a\nSERVICE_KEY_PREVIOUS=b\nSERVICE_KEY_PREVIOUS_EXPIRES_AT=253402300800",
            "SERVICE_KEY=a\nSERVICE_KEY_STATE=maybe",
        ] {
            assert!(parse_key_file("a", bad).is_err(), "{bad}");
        }
        let last = parse_key_file("a", "SERVICE_KEY=a\nSERVICE_KEY_EXPIRES_AT=253402300799");
        assert!(
            last.unwrap()
                .find(DEFAULT_KEY_ID)
                .unwrap()
                .expiry()
                .is_some()
        );
    }
}
