//! The `[auth]` section: where the bearer token comes from, and keeping it secret.
//!
//! The environment is read once, by `Config::load` (the binary's edge), into
//! `env_token`; resolving the token never reads it. A `Config` built any other way,
//! such as the tests' `Config::parse`, is immune to a `RUSTKV_TOKEN` the developer
//! happens to have set.

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// Bearer-token authentication; off unless a token is configured.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token itself (prefer `token_file` or `RUSTKV_TOKEN`: config files get shared).
    pub token: String,
    /// A file whose contents (trimmed) are the token.
    pub token_file: String,
    /// `RUSTKV_TOKEN` as `Config::load` found it. Not a config key: never read from
    /// or written to TOML, so it cannot leak into the logged configuration either.
    #[serde(skip)]
    pub env_token: Option<String>,
}

/// The environment variable that, when set, is the token (it wins over the file).
pub const TOKEN_ENV: &str = "RUSTKV_TOKEN";

impl std::fmt::Debug for AuthConfig {
    // Never print the token itself, only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("token_file", &self.token_file)
            .field("env_token", &self.env_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AuthConfig {
    /// The effective token: `env_token` (`RUSTKV_TOKEN`), else `token_file`'s
    /// contents, else `token`; `None` when none is set (authentication off). Reads
    /// the file, never the environment.
    pub fn resolve(&self) -> Result<Option<String>, ConfigError> {
        if let Some(token) = &self.env_token {
            return non_empty(token.trim(), TOKEN_ENV);
        }
        if !self.token_file.is_empty() {
            let text =
                std::fs::read_to_string(&self.token_file).map_err(|source| ConfigError::Read {
                    path: self.token_file.clone(),
                    source,
                })?;
            return non_empty(text.trim(), "auth.token_file");
        }
        Ok((!self.token.is_empty()).then(|| self.token.clone()))
    }
}

fn non_empty(token: &str, key: &'static str) -> Result<Option<String>, ConfigError> {
    check(
        !token.is_empty(),
        key,
        "(empty)",
        "the token must not be empty",
    )?;
    Ok(Some(token.to_owned()))
}
