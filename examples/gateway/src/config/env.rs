//! [`Config::load`]: the file, then the environment.

use std::path::Path;

use super::{Config, Environment};

impl Config {
    /// Reads `path` (if given), then applies the `GW_*` variables and
    /// `SERVICE_AUTH_ENFORCEMENT_MODE` from `env`. An unknown `GW_*` variable is an error,
    /// like an unknown key in the file; other variables are ignored.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        for (key, value) in env {
            config.apply_env(&key, value)?;
        }
        Ok(config)
    }

    fn apply_env(&mut self, key: &str, value: String) -> Result<(), String> {
        let bad = |e: &dyn std::fmt::Display| format!("{key}: {e}");
        match key {
            "GW_LISTEN" => self.listen = value.parse().map_err(|e| bad(&e))?,
            "GW_GATEWAY_TYPE" => self.gateway_type = value.parse().map_err(|e| bad(&e))?,
            "GW_ENVIRONMENT" => {
                self.environment = match value.as_str() {
                    "production" => Environment::Production,
                    "development" => Environment::Development,
                    other => return Err(bad(&format!("unknown environment {other:?}"))),
                }
            }
            "GW_PROBLEM_TYPE_BASE" => self.problem_type_base = value,
            "GW_REDIS_URL" => self.redis_url = non_empty(value),
            "GW_REDIS_PREFIX" => self.redis_prefix = value,
            "GW_DATABASE_URL" => self.database_url = non_empty(value),
            "GW_UPSTREAM_URL" => self.upstream.production_url = non_empty(value),
            "GW_SANDBOX_UPSTREAM_URL" => self.upstream.sandbox_url = non_empty(value),
            "GW_UPSTREAM_TIMEOUT_MS" => {
                self.upstream.timeout_ms = value.parse().map_err(|e| bad(&e))?
            }
            "GW_AUTH_JWKS_URL" => self.auth.jwks_url = non_empty(value),
            "GW_AUTH_ISSUER" => self.auth.issuer = non_empty(value),
            "GW_AUTH_AUDIENCE" => self.auth.audience = non_empty(value),
            "GW_SERVICE_KEYS_DIR" => self.service_auth.keys_dir = non_empty(value),
            // The seed's rollback switch, read by svc-hmac's strict parser: a typo must not
            // silently open the service-only routes (as the lenient `ModeSwitch::from_env`
            // would), so the gateway refuses to start.
            svc_hmac::ENFORCEMENT_MODE_ENV => {
                let mode =
                    svc_hmac::ModeSwitch::try_parse_env(Some(&value)).map_err(|e| e.to_string())?;
                self.service_auth.enforcement_cap = Some(mode);
            }
            "GW_CALLBACK_SECRETS" => {
                self.callbacks.secrets = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            _ => match key.strip_prefix("GW_FLAG_") {
                Some("") => return Err(bad(&"a feature flag needs a name: GW_FLAG_<NAME>")),
                Some(flag) => {
                    self.flags.insert(flag.to_ascii_lowercase(), value);
                }
                // A typo (GW_CALLBACK_SECRET) must not fall back to a default silently,
                // as unknown keys in the file do not.
                None if key.starts_with("GW_") => {
                    return Err(format!(
                        "unknown environment variable {key}: the GW_* variables are listed in \
                         docs/configuration.md (feature flags are GW_FLAG_<NAME>)"
                    ));
                }
                None => {}
            },
        }
        Ok(())
    }
}

fn non_empty(v: String) -> Option<String> {
    (!v.trim().is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gw_core::GatewayType;
    use std::time::Duration;

    #[test]
    fn file_then_env() {
        let dir = std::env::temp_dir().join(format!("gw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\ngateway_type = \"pp\"\n[upstream]\ntimeout_ms = 5\n",
        )
        .unwrap();
        let env = [
            ("GW_LISTEN".to_string(), "127.0.0.1:7000".to_string()),
            ("GW_REDIS_URL".to_string(), "redis://x".to_string()),
            ("UNRELATED".to_string(), "1".to_string()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.gateway_type, GatewayType::Pp);
        assert_eq!(c.upstream.timeout(), Duration::from_millis(5));
        assert_eq!(c.redis_url.as_deref(), Some("redis://x"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn enforcement_cap_must_parse() {
        let load =
            |v: &str| Config::load(None, [(svc_hmac::ENFORCEMENT_MODE_ENV.into(), v.into())]);
        for bad in ["", " ", "enforced", "Enforce!", "log only", "2"] {
            let err = load(bad).unwrap_err();
            assert!(
                err.starts_with("SERVICE_AUTH_ENFORCEMENT_MODE: "),
                "{bad:?}: {err}"
            );
            // svc-hmac's one strict parser, not a copy of it.
            let strict = svc_hmac::ModeSwitch::try_parse_env(Some(bad)).unwrap_err();
            assert_eq!(err, strict.to_string());
            assert!(err.contains(svc_hmac::Mode::SPELLINGS), "{err}");
        }
        for (value, mode) in [
            ("enforce", svc_hmac::Mode::Enforce),
            ("true", svc_hmac::Mode::Enforce),
            ("1", svc_hmac::Mode::Enforce),
            ("false", svc_hmac::Mode::LogOnly),
            ("log_only", svc_hmac::Mode::LogOnly),
            ("Log-Only", svc_hmac::Mode::LogOnly),
            ("off", svc_hmac::Mode::Off),
        ] {
            let c = load(value).unwrap();
            assert_eq!(c.service_auth.enforcement_cap, Some(mode), "{value:?}");
        }
        let unset = Config::load(None, Vec::new()).unwrap();
        assert_eq!(unset.service_auth.enforcement_cap, None);
        // Environment only: the file cannot set it.
        assert!(toml::from_str::<Config>("[service_auth]\nenforcement_cap = \"off\"").is_err());
    }

    #[test]
    fn the_configuration_doc_lists_every_accepted_mode_spelling() {
        // `Mode::SPELLINGS` is checked against the parser in svc-hmac; the refusal message
        // quotes it (see `enforcement_cap_must_parse`), and so must the operator's docs.
        let doc = include_str!("../../../../docs/configuration.md");
        let row = doc
            .lines()
            .find(|l| l.contains("`SERVICE_AUTH_ENFORCEMENT_MODE`"))
            .unwrap();
        assert!(row.contains(svc_hmac::Mode::SPELLINGS), "{row}");
    }

    #[test]
    fn unknown_gw_variables_are_refused_by_name() {
        let load = |k: &str| Config::load(None, [(k.to_owned(), "x".to_owned())]);
        for typo in [
            "GW_CALLBACK_SECRET",
            "GW_UPSTREAM",
            "GW_",
            "GW_listen",
            "GW_FLAG",
        ] {
            let err = load(typo).unwrap_err();
            assert!(err.contains(&format!("variable {typo}:")), "{typo}: {err}");
        }
        assert!(load("GW_FLAG_").unwrap_err().starts_with("GW_FLAG_: "));
        let c = load("GW_FLAG_ENABLE_TRIAL_MODE").unwrap();
        assert_eq!(c.flags["enable_trial_mode"], "x");
        for other in ["PATH", "GWX_LISTEN", "XGW_LISTEN", "gw_listen", "RUST_LOG"] {
            assert!(load(other).is_ok(), "{other}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        assert!(Config::load(None, [("GW_LISTEN".into(), "x".into())]).is_err());
        assert!(Config::load(None, [("GW_GATEWAY_TYPE".into(), "zz".into())]).is_err());
    }
}
