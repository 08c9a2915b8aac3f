//! Password lookup in a libpq password file (`~/.pgpass` or `PGPASSFILE`).
//!
//! Each line is `hostname:port:database:username:password`; `*` in any of the first four
//! fields matches anything, `\:` and `\\` escape a colon or backslash, and lines starting
//! with `#` are comments. As in libpq, a file readable by group or others is ignored with a
//! warning, and the first matching line wins.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What a line must match: the connection's host (or `localhost` for the default socket
/// directory), port, database and user.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// Looks up the password for `target` in the file at `path`. Problems with the file are
/// warnings, not errors: libpq carries on without a password too.
pub(crate) fn lookup(path: &Path, target: &Target<'_>) -> Option<String> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read password file");
            return None;
        }
    };
    if !metadata.is_file() {
        tracing::warn!(path = %path.display(), "password file is not a plain file; ignoring it");
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "password file has group or world access; permissions should be u=rw (0600) or less; ignoring it"
        );
        return None;
    }
    match fs::read_to_string(path) {
        Ok(contents) => find(&contents, target),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read password file");
            None
        }
    }
}

/// Finds the first line of a password file's contents that matches `target`.
pub(crate) fn find(contents: &str, target: &Target<'_>) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [target.host, port.as_str(), target.dbname, target.user];
    contents
        .lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_fields(line);
            let [host, port, dbname, user, password, ..] = fields.as_slice() else {
                return None;
            };
            let matches = [host, port, dbname, user]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
            matches.then(|| password.clone())
        })
}

/// Splits a line on unescaped colons. Like libpq, the password is the fifth field (it ends
/// at the next unescaped colon), and a line with fewer than five fields matches nothing.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ':' => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    fields
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const TARGET: Target<'static> = Target {
        host: "db.example",
        port: 5432,
        dbname: "app",
        user: "alice",
    };

    #[test]
    fn first_matching_line_wins() {
        let contents = "\
# comment
other.example:5432:app:alice:wrong-host
db.example:5433:app:alice:wrong-port
db.example:5432:other:alice:wrong-db
db.example:5432:app:bob:wrong-user
db.example:5432:app:alice:right\r
*:*:*:*:too-late
";
        assert_eq!(find(contents, &TARGET).as_deref(), Some("right"));
    }

    #[test]
    fn wildcards_and_escapes() {
        let cases = [
            ("*:*:*:*:any", Some("any")),
            ("db.example:*:app:*:some", Some("some")),
            (r"db.example:5432:app:alice:p\:w\\d", Some(r"p:w\d")),
            // The password ends at the next unescaped colon, as in libpq.
            ("db.example:5432:app:alice:pw:ignored", Some("pw")),
            ("db.example:5432:app:alice", None),
            ("", None),
            ("#*:*:*:*:commented", None),
        ];
        for (contents, expected) in cases {
            assert_eq!(find(contents, &TARGET).as_deref(), expected, "{contents}");
        }
        let escaped_host = Target {
            host: "/tmp:odd",
            ..TARGET
        };
        assert_eq!(
            find(r"/tmp\:odd:5432:app:alice:pw", &escaped_host).as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn file_readable_by_others_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        fs::write(&path, "*:*:*:*:secret\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &TARGET).as_deref(), Some("secret"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(lookup(&path, &TARGET).as_deref(), Some("secret"));
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(lookup(&path, &TARGET), None, "mode {mode:o}");
        }
        assert_eq!(lookup(&dir.path().join("missing"), &TARGET), None);
        assert_eq!(lookup(dir.path(), &TARGET), None, "a directory");
    }
}
