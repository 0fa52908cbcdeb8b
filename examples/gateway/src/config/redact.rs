//! `Debug` for the configuration without its secrets: callback secrets as a count, URLs
//! with their passwords replaced by `***`.

use std::fmt;

use super::{AuthConfig, CallbacksConfig, Config, UpstreamConfig};

/// What replaces a password.
const MASK: &str = "***";

/// `url` with every password replaced by `***`: the userinfo password of a URL
/// (`redis://:pw@host`, `postgres://user:pw@host/db`), password query parameters
/// (`?password=pw`, `?sslpassword=pw`, `?pass=pw`), and the password of a libpq
/// key/value string (`host=db password='p w'`).
pub fn redact_url(url: &str) -> String {
    match scheme_end(url) {
        // `scheme://authority...`, or a scheme without an authority (`unix:/path?pass=`).
        Some(i) => {
            let i = if url[i..].starts_with("//") { i + 2 } else { i };
            redact_url_form(&url[..i], &url[i..])
        }
        None => redact_key_values(url),
    }
}

/// Where an RFC 3986 scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`) that opens
/// `s` ends, after its `:`; `None` for text that does not open with one (libpq
/// `key=value` strings).
fn scheme_end(s: &str) -> Option<usize> {
    let colon = s.find(':')?;
    let scheme = &s.as_bytes()[..colon];
    (scheme.first()?.is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(colon + 1)
}

fn is_password_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "pass" || key.contains("password")
}

fn redact_url_form(scheme: &str, rest: &str) -> String {
    let mut out = String::from(scheme);
    // Userinfo ends at the last `@`: a password may hold `/`, `?`, `#` or `@` unencoded,
    // and masking too much beats leaking. Userinfo that is not plainly `user[:password]`
    // is masked whole.
    let after = match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, _)) => (user, true),
                None => (userinfo, false),
            };
            if user.contains(['/', '?', '#']) {
                out.push_str(MASK);
            } else {
                out.push_str(user);
                if password {
                    out.extend([":", MASK]);
                }
            }
            out.push('@');
            after
        }
        None => rest,
    };
    let (before_fragment, fragment) = after.split_at(after.find('#').unwrap_or(after.len()));
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.extend([path, "?"]);
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) if is_password_key(key) => out.extend([key, "=", MASK]),
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

/// A libpq `key=value` string (values optionally single-quoted, `\` escapes). Anything
/// that does not read as one is masked whole rather than guessed at.
fn redact_key_values(s: &str) -> String {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out.join(" ");
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return MASK.to_owned();
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            loop {
                match chars.next() {
                    None => return MASK.to_owned(),
                    Some('\\') => value.extend(['\\'].into_iter().chain(chars.next())),
                    Some('\'') => break value.push('\''),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if is_password_key(&key) {
            value = MASK.to_owned();
        }
        out.push(format!("{key}={value}"));
    }
}

fn url(u: &Option<String>) -> Option<String> {
    u.as_deref().map(redact_url)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be added without deciding how it prints.
        let Self {
            listen,
            gateway_type,
            environment,
            problem_type_base,
            redis_url,
            redis_prefix,
            database_url,
            upstream,
            auth,
            service_auth,
            rbac,
            policy,
            budget,
            audit,
            callbacks,
            flags,
        } = self;
        f.debug_struct("Config")
            .field("listen", listen)
            .field("gateway_type", gateway_type)
            .field("environment", environment)
            .field("problem_type_base", problem_type_base)
            .field("redis_url", &url(redis_url))
            .field("redis_prefix", redis_prefix)
            .field("database_url", &url(database_url))
            .field("upstream", upstream)
            .field("auth", auth)
            .field("service_auth", service_auth)
            .field("rbac", rbac)
            .field("policy", policy)
            .field("budget", budget)
            .field("audit", audit)
            .field("callbacks", callbacks)
            .field("flags", flags)
            .finish()
    }
}

impl fmt::Debug for CallbacksConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { secrets, schema } = self;
        f.debug_struct("CallbacksConfig")
            .field("secrets", &format_args!("<{} redacted>", secrets.len()))
            .field("schema", schema)
            .finish()
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            production_url,
            sandbox_url,
            timeout_ms,
        } = self;
        f.debug_struct("UpstreamConfig")
            .field("production_url", &url(production_url))
            .field("sandbox_url", &url(sandbox_url))
            .field("timeout_ms", timeout_ms)
            .finish()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            jwks_url,
            jwks_file,
            public_key_file,
            issuer,
            audience,
            public_paths,
        } = self;
        f.debug_struct("AuthConfig")
            .field("jwks_url", &url(jwks_url))
            .field("jwks_file", jwks_file)
            .field("public_key_file", public_key_file)
            .field("issuer", issuer)
            .field("audience", audience)
            .field("public_paths", public_paths)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_every_url_form() {
        for (url, want) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
            ("rediss://user:s3cret@cache", "rediss://user:***@cache"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("postgres://gw@db/test", "postgres://gw@db/test"),
            (
                "postgres://gw:p%40ss:w@rd@db:5432/test?sslmode=require",
                "postgres://gw:***@db:5432/test?sslmode=require",
            ),
            (
                "postgresql://db/test?user=gw&password=s3cret#x",
                "postgresql://db/test?user=gw&password=***#x",
            ),
            (
                "postgres://db/test?sslpassword=s3cret",
                "postgres://db/test?sslpassword=***",
            ),
            (
                "http://u:s3cret@jwks.internal/keys.json",
                "http://u:***@jwks.internal/keys.json",
            ),
            (
                "redis://:pa/ss?s3cret@cache:6379",
                "redis://:***@cache:6379",
            ),
            ("redis://us/er@cache", "redis://***@cache"),
            // A scheme without `//` (redis-rs takes `unix:` and `redis+unix:` paths).
            (
                "unix:/run/redis.sock?db=1&pass=s3cret",
                "unix:/run/redis.sock?db=1&pass=***",
            ),
            ("localhost:6379", "localhost:6379"),
            ("postgres://db/test?password=s3@cret", "postgres://***@cret"),
            (
                "host=db user=gw password=s3cret dbname=test",
                "host=db user=gw password=*** dbname=test",
            ),
            (
                "host=db password = 'p w\\' s3cret' dbname=test",
                "host=db password=*** dbname=test",
            ),
            ("host=db password='unterminated s3cret", "***"),
            ("s3cret", "***"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut config = Config {
            redis_url: Some("redis://:redis-s3cret@cache:6379".into()),
            database_url: Some("postgres://gw:pg-s3cret@db/test".into()),
            ..Config::default()
        };
        config.upstream.production_url = Some("http://u:up-s3cret@plant:9000".into());
        config.auth.jwks_url = Some("http://u:jwks-s3cret@id/jwks.json".into());
        config.callbacks.secrets = vec![
            "callback-secret-one-0123456789abcdef".into(),
            "callback-secret-two-0123456789abcdef".into(),
        ];
        for text in [format!("{config:?}"), format!("{config:#?}")] {
            for secret in ["s3cret", "callback-secret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            for shown in [
                "cache:6379",
                "gw:***@db/test",
                "<2 redacted>",
                "plant:9000",
                "127.0.0.1:8080",
            ] {
                assert!(text.contains(shown), "{shown} missing from {text}");
            }
        }
    }
}
