//! Parsing libpq connection strings (URLs and `key=value` lists) into [`Params`], a set of
//! settings that may each be unset, so that several sources can be layered.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

use crate::Error;

/// libpq's `sslmode`: whether TLS is used and how the server's certificate is checked.
///
/// | mode | TLS | server certificate |
/// |---|---|---|
/// | `Disable` | never | - |
/// | `Allow` | treated like `Prefer` (libpq tries plain text first; we try TLS first) | not checked |
/// | `Prefer` (default) | if the server offers it, else plain text | not checked |
/// | `Require` | always | not checked, unless a root certificate exists (`sslrootcert` or `~/.postgresql/root.crt`): then the chain is verified, as libpq does |
/// | `VerifyCa` | always | chain verified against the root certificate(s); host name not checked |
/// | `VerifyFull` | always | chain and host name verified |
///
/// Connections through a Unix socket never use TLS, whatever the mode (libpq does the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Accepted for compatibility; behaves like [`SslMode::Prefer`].
    Allow,
    /// TLS if the server supports it, without checking its certificate.
    Prefer,
    /// TLS or fail; the certificate is checked only if a root certificate exists.
    Require,
    /// TLS with the certificate chain verified; the host name is not checked.
    VerifyCa,
    /// TLS with the certificate chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `"verify-full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    /// Parses the libpq spelling (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`).
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::conninfo(format!(
                    "invalid sslmode value: \"{other}\""
                )));
            }
        })
    }
}

/// Connection settings from one source; `None` means "not given here".
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pub host: Option<String>,
    pub hostaddr: Option<IpAddr>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: Option<String>,
    pub fallback_application_name: Option<String>,
    /// Seconds; 0 means "wait forever", as in libpq.
    pub connect_timeout: Option<u64>,
    pub options: Option<String>,
    pub passfile: Option<PathBuf>,
    pub channel_binding: Option<&'static str>,
    pub target_session_attrs: Option<&'static str>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

impl Params {
    /// Parses a libpq URL (`postgres://` or `postgresql://`) or a `key=value` string.
    pub fn parse(conninfo: &str) -> Result<Params, Error> {
        let trimmed = conninfo.trim_start();
        for prefix in ["postgresql://", "postgres://"] {
            if let Some(rest) = trimmed.strip_prefix(prefix) {
                return parse_url(rest.trim_end());
            }
        }
        parse_key_values(conninfo)
    }

    /// Sets one libpq keyword. Values are validated here, so every source gets the same checks.
    /// An empty value leaves the setting unset, as libpq treats empty strings as "use the default".
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        if value.is_empty() {
            return Ok(());
        }
        let text = || Some(value.to_owned());
        match key {
            "host" => {
                if value.contains(',') {
                    return Err(Error::conninfo(format!(
                        "multiple hosts are not supported (host=\"{value}\")"
                    )));
                }
                self.host = text();
            }
            "hostaddr" => {
                let addr = value.parse().map_err(|_| {
                    Error::conninfo(format!("invalid hostaddr (not an IP address): \"{value}\""))
                })?;
                self.hostaddr = Some(addr);
            }
            "port" => self.port = Some(parse_port(value).ok_or_else(|| invalid_port(value))?),
            "user" => self.user = text(),
            "password" => self.password = text(),
            "dbname" => self.dbname = text(),
            "sslmode" => self.sslmode = Some(value.parse()?),
            "sslrootcert" => self.sslrootcert = text(),
            "sslcert" => self.sslcert = Some(PathBuf::from(value)),
            "sslkey" => self.sslkey = Some(PathBuf::from(value)),
            "application_name" => self.application_name = text(),
            "fallback_application_name" => self.fallback_application_name = text(),
            "connect_timeout" => {
                // libpq: zero or negative means "no timeout".
                let seconds: i64 = value.trim().parse().map_err(|_| {
                    Error::conninfo(format!("invalid connect_timeout (seconds): \"{value}\""))
                })?;
                self.connect_timeout = Some(u64::try_from(seconds).unwrap_or(0));
            }
            "options" => self.options = text(),
            "passfile" => self.passfile = Some(PathBuf::from(value)),
            "channel_binding" => {
                self.channel_binding = Some(one_of(key, value, &["disable", "prefer", "require"])?);
            }
            "target_session_attrs" => {
                self.target_session_attrs = Some(one_of(key, value, &["any", "read-write"])?);
            }
            // GSSAPI encryption is not supported; accepting "disable"/"prefer" keeps URLs copied
            // from documentation working, since both mean "no GSS encryption" for us.
            "gssencmode" => {
                one_of(key, value, &["disable", "prefer"])?;
            }
            other => {
                return Err(Error::conninfo(format!(
                    "invalid connection option \"{other}\""
                )));
            }
        }
        Ok(())
    }

    /// Fills every unset field from `fallback`.
    pub fn or(self, fallback: Params) -> Params {
        Params {
            host: self.host.or(fallback.host),
            hostaddr: self.hostaddr.or(fallback.hostaddr),
            port: self.port.or(fallback.port),
            user: self.user.or(fallback.user),
            password: self.password.or(fallback.password),
            dbname: self.dbname.or(fallback.dbname),
            sslmode: self.sslmode.or(fallback.sslmode),
            sslrootcert: self.sslrootcert.or(fallback.sslrootcert),
            sslcert: self.sslcert.or(fallback.sslcert),
            sslkey: self.sslkey.or(fallback.sslkey),
            application_name: self.application_name.or(fallback.application_name),
            fallback_application_name: self
                .fallback_application_name
                .or(fallback.fallback_application_name),
            connect_timeout: self.connect_timeout.or(fallback.connect_timeout),
            options: self.options.or(fallback.options),
            passfile: self.passfile.or(fallback.passfile),
            channel_binding: self.channel_binding.or(fallback.channel_binding),
            target_session_attrs: self.target_session_attrs.or(fallback.target_session_attrs),
        }
    }
}

fn parse_port(value: &str) -> Option<u16> {
    value.trim().parse().ok().filter(|&port| port != 0)
}

fn invalid_port(value: &str) -> Error {
    if value.contains(',') {
        Error::conninfo(format!(
            "multiple ports are not supported (port=\"{value}\")"
        ))
    } else {
        Error::conninfo(format!("invalid port number: \"{value}\""))
    }
}

fn one_of(key: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, Error> {
    allowed
        .iter()
        .copied()
        .find(|&a| a == value)
        .ok_or_else(|| {
            Error::conninfo(format!(
                "invalid {key} value: \"{value}\" (supported: {})",
                allowed.join(", ")
            ))
        })
}

/// libpq's `key=value` syntax: whitespace-separated pairs, optional spaces around `=`, values in
/// single quotes may contain spaces, and a backslash escapes the next character (quoted or not).
fn parse_key_values(conninfo: &str) -> Result<Params, Error> {
    let mut params = Params::default();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::conninfo(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(Error::conninfo(format!(
                            "unterminated quoted string in connection info string (value of \"{key}\")"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        params.set(&key, &value)?;
    }
}

/// libpq's URI syntax, after the scheme:
/// `[user[:password]@][host][:port][/dbname][?key=value&...]`, every part percent-decoded.
/// Values from the authority are never echoed in errors: a malformed URL can shift a
/// password into the host or port position.
fn parse_url(rest: &str) -> Result<Params, Error> {
    let mut params = Params::default();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            params.user = non_empty(decode(user, "user name")?);
            if let Some(password) = password {
                params.password = non_empty(decode(password, "password")?);
            }
            hostport
        }
        None => authority,
    };
    parse_url_hostport(hostport, &mut params)?;
    if let Some(path) = path {
        params.dbname = non_empty(decode(path, "database name")?);
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::conninfo(format!(
                "missing key/value separator \"=\" in URI query parameter \"{pair}\""
            )));
        };
        let key = decode(key, "query parameter name")?;
        if value.contains('=') {
            return Err(Error::conninfo(format!(
                "extra key/value separator \"=\" in URI query parameter \"{key}\" (encode it as %3D)"
            )));
        }
        let value = decode(value, "query parameter value")?;
        // JDBC-style `ssl=true`, which libpq accepts in URIs only.
        if key == "ssl" {
            if value != "true" {
                return Err(Error::conninfo(format!(
                    "invalid ssl value: \"{value}\" (only \"true\" is supported; use sslmode)"
                )));
            }
            params.sslmode = Some(SslMode::Require);
            continue;
        }
        params.set(&key, &value)?;
    }
    Ok(params)
}

fn parse_url_hostport(hostport: &str, params: &mut Params) -> Result<(), Error> {
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(Error::conninfo(
                "missing \"]\" after IPv6 host address in URL",
            ));
        };
        if host.is_empty() {
            return Err(Error::conninfo("IPv6 host address may not be empty in URL"));
        }
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None if after.starts_with(',') => {
                return Err(Error::conninfo("multiple hosts are not supported in URLs"));
            }
            None => {
                return Err(Error::conninfo(
                    "unexpected character after IPv6 host address in URL",
                ));
            }
        };
        (host.to_owned(), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        (decode(host, "host")?, port)
    };
    if host.contains(',') || port.is_some_and(|p| p.contains(',')) {
        return Err(Error::conninfo("multiple hosts are not supported in URLs"));
    }
    params.host = non_empty(host);
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        let port = decode(port, "port")?;
        params.port =
            Some(parse_port(&port).ok_or_else(|| Error::conninfo("invalid port number in URL"))?);
    }
    Ok(())
}

fn decode(text: &str, what: &str) -> Result<String, Error> {
    let decoded = percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| Error::conninfo(format!("invalid percent-encoding (not UTF-8) in {what}")))?;
    if decoded.contains('\0') {
        return Err(Error::conninfo(format!(
            "forbidden value %00 in percent-encoded {what}"
        )));
    }
    Ok(decoded.into_owned())
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(conninfo: &str) -> Params {
        Params::parse(conninfo).unwrap_or_else(|e| panic!("{conninfo:?}: {e}"))
    }

    fn error(conninfo: &str) -> String {
        match Params::parse(conninfo) {
            Ok(params) => panic!("{conninfo:?} parsed as {params:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn host(h: &str) -> Params {
        Params {
            host: Some(h.to_owned()),
            ..Params::default()
        }
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    /// The URI examples from the libpq documentation (34.1.1.2), minus the multi-host one.
    #[test]
    fn libpq_uri_examples() {
        let cases = [
            ("postgresql://", Params::default()),
            ("postgresql://localhost", host("localhost")),
            (
                "postgresql://localhost:5433",
                Params {
                    port: Some(5433),
                    ..host("localhost")
                },
            ),
            (
                "postgresql://localhost/mydb",
                Params {
                    dbname: s("mydb"),
                    ..host("localhost")
                },
            ),
            (
                "postgresql://user@localhost",
                Params {
                    user: s("user"),
                    ..host("localhost")
                },
            ),
            (
                "postgresql://user:secret@localhost",
                Params {
                    user: s("user"),
                    password: s("secret"),
                    ..host("localhost")
                },
            ),
            (
                "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
                Params {
                    user: s("other"),
                    dbname: s("otherdb"),
                    connect_timeout: Some(10),
                    application_name: s("myapp"),
                    ..host("localhost")
                },
            ),
            (
                "postgresql:///mydb?host=localhost&port=5433",
                Params {
                    dbname: s("mydb"),
                    port: Some(5433),
                    ..host("localhost")
                },
            ),
            (
                "postgresql://[2001:db8::1234]/database",
                Params {
                    dbname: s("database"),
                    ..host("2001:db8::1234")
                },
            ),
            (
                "postgresql:///dbname?host=/var/lib/postgresql",
                Params {
                    dbname: s("dbname"),
                    ..host("/var/lib/postgresql")
                },
            ),
            (
                "postgresql://%2Fvar%2Flib%2Fpostgresql/dbname",
                Params {
                    dbname: s("dbname"),
                    ..host("/var/lib/postgresql")
                },
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(parsed(url), expected, "{url}");
        }
    }

    #[test]
    fn uri_details() {
        let cases = [
            // Percent-decoding everywhere; `+` is not a space in libpq.
            (
                "postgres://al%69ce:p%40ss%3Aw%2Frd+x@h%C3%A9/my%20db?application_name=a%26b",
                Params {
                    user: s("alice"),
                    password: s("p@ss:w/rd+x"),
                    dbname: s("my db"),
                    application_name: s("a&b"),
                    ..host("hé")
                },
            ),
            // An unencoded `@` in the password: the last `@` ends the user info.
            (
                "postgresql://bob:a@b@db:6000/",
                Params {
                    user: s("bob"),
                    password: s("a@b"),
                    port: Some(6000),
                    ..host("db")
                },
            ),
            (
                "postgresql://[::1]:5433/db",
                Params {
                    port: Some(5433),
                    dbname: s("db"),
                    ..host("::1")
                },
            ),
            // pgtest / pgstrata-embedded style socket URL.
            (
                "postgresql://postgres@/t_1_2?host=/tmp/pgstrata-x1/&port=54321",
                Params {
                    user: s("postgres"),
                    dbname: s("t_1_2"),
                    port: Some(54321),
                    ..host("/tmp/pgstrata-x1/")
                },
            ),
            // Query parameters override the authority, as in libpq.
            (
                "postgresql://a@h1:1/d?host=h2&user=b&port=2",
                Params {
                    user: s("b"),
                    port: Some(2),
                    dbname: s("d"),
                    ..host("h2")
                },
            ),
            (
                "postgresql://h/d?ssl=true",
                Params {
                    dbname: s("d"),
                    sslmode: Some(SslMode::Require),
                    ..host("h")
                },
            ),
            (
                "postgresql://h/d?sslmode=verify-full&sslrootcert=system&channel_binding=require",
                Params {
                    dbname: s("d"),
                    sslmode: Some(SslMode::VerifyFull),
                    sslrootcert: s("system"),
                    channel_binding: Some("require"),
                    ..host("h")
                },
            ),
            (
                "postgresql://h?options=-c%20search_path%3Dapp&target_session_attrs=read-write&gssencmode=disable",
                Params {
                    options: s("-c search_path=app"),
                    target_session_attrs: Some("read-write"),
                    ..host("h")
                },
            ),
            ("postgresql://h:/", host("h")),
            (
                "  postgresql://h/d  ",
                Params {
                    dbname: s("d"),
                    ..host("h")
                },
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(parsed(url), expected, "{url}");
        }
    }

    #[test]
    fn key_value_strings() {
        let cases = [
            ("", Params::default()),
            (
                "host=localhost port=5432 dbname=mydb connect_timeout=10",
                Params {
                    port: Some(5432),
                    dbname: s("mydb"),
                    connect_timeout: Some(10),
                    ..host("localhost")
                },
            ),
            (
                "  host = /var/run/postgresql\tuser=alice  ",
                Params {
                    user: s("alice"),
                    ..host("/var/run/postgresql")
                },
            ),
            (
                r"password='it\'s a \\secret' dbname='' application_name=a\ b",
                Params {
                    password: s(r"it's a \secret"),
                    application_name: s("a b"),
                    ..Params::default()
                },
            ),
            (
                "hostaddr=127.0.0.1 sslmode=verify-ca sslrootcert=/etc/ca.pem sslcert=/c sslkey=/k",
                Params {
                    hostaddr: Some(IpAddr::from([127, 0, 0, 1])),
                    sslmode: Some(SslMode::VerifyCa),
                    sslrootcert: s("/etc/ca.pem"),
                    sslcert: Some(PathBuf::from("/c")),
                    sslkey: Some(PathBuf::from("/k")),
                    ..Params::default()
                },
            ),
            (
                "connect_timeout=-5 fallback_application_name=psql passfile=/p options='-c x=1'",
                Params {
                    connect_timeout: Some(0),
                    fallback_application_name: s("psql"),
                    passfile: Some(PathBuf::from("/p")),
                    options: s("-c x=1"),
                    ..Params::default()
                },
            ),
            // The last occurrence wins, as in libpq.
            ("host=a host=b", host("b")),
        ];
        for (conninfo, expected) in cases {
            assert_eq!(parsed(conninfo), expected, "{conninfo}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("host=h pasword=x", "invalid connection option \"pasword\""),
            (
                "postgresql://h/d?sslmod=require",
                "invalid connection option \"sslmod\"",
            ),
            ("host", "missing \"=\" after \"host\""),
            ("password='abc", "unterminated quoted string"),
            ("sslmode=verify", "invalid sslmode value: \"verify\""),
            ("port=abc", "invalid port number: \"abc\""),
            ("port=0", "invalid port number"),
            ("host=a,b", "multiple hosts are not supported"),
            ("port=1,2", "multiple ports are not supported"),
            (
                "postgresql://host1:123,host2:456/somedb",
                "multiple hosts are not supported",
            ),
            ("postgresql://[::1,h2/db", "missing \"]\""),
            ("postgresql://[]/db", "may not be empty"),
            ("postgresql://h/d?sslmode", "missing key/value separator"),
            (
                "postgresql://h/d?options=-c a=b",
                "extra key/value separator",
            ),
            ("postgresql://h/d%00", "%00"),
            ("postgresql://h/d%ff", "not UTF-8"),
            ("postgresql://h/d?ssl=false", "invalid ssl value"),
            ("hostaddr=db.example", "not an IP address"),
            ("channel_binding=maybe", "invalid channel_binding value"),
            (
                "target_session_attrs=standby",
                "invalid target_session_attrs value",
            ),
            ("gssencmode=require", "invalid gssencmode value"),
            ("connect_timeout=soon", "invalid connect_timeout"),
        ];
        for (conninfo, expected) in cases {
            let message = error(conninfo);
            assert!(message.contains(expected), "{conninfo}: {message}");
        }
    }

    /// A malformed URL can put the password where the port or host goes: the error must
    /// not repeat it.
    #[test]
    fn url_errors_do_not_echo_the_authority() {
        for url in [
            "postgresql://alice:hunter2/x@db/app",
            "postgresql://alice:hunter2%zz@db/app",
            "postgresql://[hunter2/app",
            "postgresql://db:hunter2/app",
        ] {
            let message = match Params::parse(url) {
                Ok(params) => {
                    // Parsed some other way: then the password must not have landed in a
                    // visible field either.
                    assert!(!format!("{params:?}").contains("hunter2"), "{url}");
                    continue;
                }
                Err(e) => e.to_string(),
            };
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }

    #[test]
    fn or_prefers_the_first_source() {
        let first = Params {
            port: Some(1),
            ..host("a")
        };
        let second = Params {
            port: Some(2),
            user: s("u"),
            ..host("b")
        };
        assert_eq!(
            first.or(second),
            Params {
                port: Some(1),
                user: s("u"),
                ..host("a")
            }
        );
    }

    #[test]
    fn sslmode_round_trips() {
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>().ok(), Some(mode));
        }
    }
}
