//! Static bearer tokens (`--token-auth-file`), in kube-apiserver's CSV format:
//! `token,user,uid,"group1,group2"` — at least three columns, the groups column optional.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::User;

pub struct TokenFile {
    users: HashMap<String, User>,
}

impl TokenFile {
    pub fn load(path: &Path) -> anyhow::Result<TokenFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<TokenFile> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line).with_context(|| format!("line {}", i + 1))?;
            if fields.len() < 3 {
                bail!(
                    "line {}: expected at least 3 columns (token,user,uid), got {}",
                    i + 1,
                    fields.len()
                );
            }
            let token = fields[0].trim().to_string();
            let name = fields[1].trim().to_string();
            if token.is_empty() || name.is_empty() {
                bail!("line {}: the token and the user name must not be empty", i + 1);
            }
            let groups: Vec<String> = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if users.contains_key(&token) {
                tracing::warn!(line = i + 1, "duplicate token in the token file; the later one wins");
            }
            users.insert(token, User::authenticated(name, groups, fields[2].trim()));
        }
        Ok(TokenFile { users })
    }

    pub fn lookup(&self, token: &str) -> Option<User> {
        self.users.get(token).cloned()
    }
}

/// Splits one CSV record: fields separated by commas, optionally double-quoted, `""` inside
/// quotes standing for one quote.
fn split_csv(line: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start && !quoted => {
                quoted = true;
                at_start = false;
            }
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            }
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            other => {
                field.push(other);
                at_start = false;
            }
        }
    }
    if quoted {
        bail!("unterminated quoted field");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_csv_format() {
        let file = TokenFile::parse(
            "# comment\nt1,alice,1001,\"dev,ops\"\n\nt2,bob,1002\nt3,\"carol, the admin\",1003,admins\n",
        )
        .unwrap();
        let alice = file.lookup("t1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(file.lookup("t2").unwrap().groups, vec!["system:authenticated"]);
        assert_eq!(file.lookup("t3").unwrap().name, "carol, the admin");
        assert!(file.lookup("nope").is_none());
        assert!(TokenFile::parse("t,u\n").is_err());
        assert!(TokenFile::parse("t,\"u,1\n").is_err());
    }
}
