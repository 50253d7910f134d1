//! The `[auth]` section: where the bearer token comes from, and keeping it secret.

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
            .finish()
    }
}

impl AuthConfig {
    /// The effective token: `RUSTKV_TOKEN`, else `token_file`'s contents, else `token`;
    /// `None` when none is set (authentication off).
    pub fn resolve(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(token) = std::env::var(TOKEN_ENV) {
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
