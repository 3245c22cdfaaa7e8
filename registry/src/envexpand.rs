//! Shell-style `$VAR` / `${VAR}` expansion with Python `os.path.expandvars` semantics: a
//! variable that is not set is left exactly as written.

use std::collections::HashMap;

/// Expands `$NAME` and `${NAME}` from `env`; unknown variables and a lone `$` stay as they are.
pub fn expand(text: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([
            ("HOST".to_owned(), "redis".to_owned()),
            ("PORT_1".to_owned(), "6379".to_owned()),
        ])
    }

    #[test]
    fn expands_both_forms_and_keeps_unknown() {
        assert_eq!(expand("$HOST:${PORT_1}", &env()), "redis:6379");
        assert_eq!(expand("${NOPE}/$NOPE/x", &env()), "${NOPE}/$NOPE/x");
        assert_eq!(expand("cost $ 5 ${HOST", &env()), "cost $ 5 ${HOST");
        assert_eq!(expand("$HOST.local$", &env()), "redis.local$");
        assert_eq!(expand("héllo $HOST é", &env()), "héllo redis é");
    }
}
