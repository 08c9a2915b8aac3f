//! [`ConnectOptions`]: resolved, libpq-compatible connection settings.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::conninfo::Params;
use crate::pgpass;
use crate::tls::TlsSettings;
use crate::{Error, SslMode};

/// libpq environment variables and the keyword each one sets.
const PG_ENV: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGOPTIONS", "options"),
    ("PGPASSFILE", "passfile"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
];

/// The variables of the original product (seed 001), below PG* in precedence.
/// `POSTGRES_SSL` is handled separately: it is a boolean, not a keyword value.
const POSTGRES_ENV: &[(&str, &str)] = &[
    ("POSTGRES_HOST", "host"),
    ("POSTGRES_PORT", "port"),
    ("POSTGRES_DATABASE", "dbname"),
    ("POSTGRES_USER", "user"),
    ("POSTGRES_PASSWORD", "password"),
];

/// Socket directories tried, in order, when no host is given.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/tmp"];

/// Where and how to connect to a PostgreSQL server, with libpq's rules for reading settings.
///
/// Settings come from, in precedence order: an explicit URL or `key=value` string (CLI flag or
/// `DATABASE_URL`, chosen by the caller) > PG* environment variables > the product's
/// `POSTGRES_*` variables (`POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_DATABASE`,
/// `POSTGRES_USER`, `POSTGRES_PASSWORD`, and `POSTGRES_SSL=true` meaning `sslmode=require`)
/// > defaults. Each setting is taken from the first source that has it.
///
/// Defaults: host = the first of `/var/run/postgresql` and `/tmp` that holds the server's
/// socket (`.s.PGSQL.<port>`), else `localhost`; port 5432; user = the OS user; database = the
/// user name; sslmode = `prefer` (`verify-full` if `sslrootcert=system`); connect timeout =
/// [`DEFAULT_CONNECT_TIMEOUT`](Self::DEFAULT_CONNECT_TIMEOUT) (libpq has none, but a deploy
/// tool must not hang on a server that accepts connections and never answers).
///
/// `connect_timeout` (or `PGCONNECT_TIMEOUT`) bounds the whole set-up of each connection
/// attempt: TCP connect, SSL request and TLS handshake, startup and authentication. As in
/// libpq it applies to each address tried (a host name can resolve to several), `0` or a
/// negative value waits forever, and 1 is raised to 2 seconds.
///
/// Supported keywords: `host` (a name, IP address, or a Unix socket directory starting with
/// `/`), `hostaddr`, `port`, `user`, `password`, `dbname`, `sslmode`, `sslrootcert`,
/// `sslcert`, `sslkey`, `application_name`, `fallback_application_name`, `connect_timeout`,
/// `options`, `passfile`, `channel_binding`, `target_session_attrs` (`any`, `read-write`) and
/// `gssencmode` (`disable`, `prefer`; GSSAPI is not supported). Multiple hosts are rejected.
///
/// The password is never shown: [`Display`](fmt::Display) and [`redacted`](Self::redacted)
/// leave it out, and [`Debug`] prints `<redacted>`.
///
/// ```
/// use pgstrata_conn::{ConnectOptions, SslMode};
///
/// let opts = ConnectOptions::parse("postgresql://alice:s3cret@db.example/app?sslmode=verify-full")?;
/// assert_eq!(opts.user(), "alice");
/// assert_eq!(opts.dbname(), "app");
/// assert_eq!(opts.sslmode(), SslMode::VerifyFull);
/// assert_eq!(
///     opts.to_string(),
///     "postgresql://alice@db.example:5432/app?sslmode=verify-full"
/// );
/// let admin = opts.with_dbname("postgres");
/// assert_eq!(admin.dbname(), "postgres");
/// # Ok::<(), pgstrata_conn::Error>(())
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    /// A host name, an IP address, or a socket directory (starts with `/`).
    host: String,
    hostaddr: Option<IpAddr>,
    port: u16,
    user: String,
    password: Option<String>,
    dbname: String,
    sslmode: SslMode,
    sslrootcert: Option<String>,
    sslcert: Option<PathBuf>,
    sslkey: Option<PathBuf>,
    /// The user's choice (URL, conninfo, `PGAPPNAME`): always wins.
    application_name: Option<String>,
    /// Used when the user chose no `application_name`: theirs from the conninfo, or the
    /// program's ([`with_application_name`](Self::with_application_name)).
    fallback_application_name: Option<String>,
    connect_timeout: ConnectTimeout,
    options: Option<String>,
    channel_binding: Option<&'static str>,
    target_session_attrs: Option<&'static str>,
    /// For libpq's files under `~/.postgresql/` (root.crt, postgresql.crt/.key).
    home: Option<PathBuf>,
}

/// How long one connection attempt may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnectTimeout {
    /// Not given: [`ConnectOptions::DEFAULT_CONNECT_TIMEOUT`].
    Default,
    /// `connect_timeout=0` (or negative): wait as long as it takes, as libpq does by default.
    Never,
    /// Given explicitly.
    After(Duration),
}

impl ConnectTimeout {
    /// libpq: zero or negative means no timeout, and less than two seconds is raised to two,
    /// "to prevent possibly waiting hardly-at-all".
    fn from_seconds(seconds: u64) -> Self {
        match seconds {
            0 => ConnectTimeout::Never,
            seconds => ConnectTimeout::After(Duration::from_secs(seconds.max(2))),
        }
    }

    /// The value as libpq's `connect_timeout` keyword would take it (whole seconds).
    fn keyword_value(self) -> Option<String> {
        match self {
            ConnectTimeout::Default => None,
            ConnectTimeout::Never => Some("0".to_owned()),
            ConnectTimeout::After(timeout) => Some(timeout.as_secs().max(1).to_string()),
        }
    }
}

impl ConnectOptions {
    /// The connect timeout when none is given: 30 seconds per connection attempt.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Parses a libpq URL (`postgres://` or `postgresql://`, percent-decoded, e.g.
    /// `postgresql://alice@/app?host=/var/run/postgresql&port=5433`) or a `key=value`
    /// conninfo string (`host=localhost dbname='my db'`, backslash escapes), then applies
    /// the defaults. PG* variables and `~/.pgpass` are not consulted (use
    /// [`resolve`](Self::resolve) for that); a `passfile` given in `conninfo` is, and so are
    /// libpq's certificate files under `~/.postgresql/` when connecting.
    ///
    /// Unknown keywords are an error naming the keyword.
    pub fn parse(conninfo: &str) -> Result<Self, Error> {
        let params = Params::parse(conninfo)?;
        let passfile = params.passfile.clone();
        Self::finish(params, std::env::home_dir(), passfile)
    }

    /// Resolves settings from an optional URL/conninfo string plus an environment, given as
    /// a lookup function so tests can inject one.
    ///
    /// Unset settings are filled from PG* variables (`PGHOST`, `PGHOSTADDR`, `PGPORT`,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`,
    /// `PGSSLKEY`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`, `PGOPTIONS`, `PGPASSFILE`,
    /// `PGCHANNELBINDING`, `PGTARGETSESSIONATTRS`), then from `POSTGRES_*` variables, then
    /// from the defaults. Empty variables count as unset.
    ///
    /// The password comes from the conninfo, else `PGPASSWORD`, else `POSTGRES_PASSWORD`,
    /// else the password file (`passfile`/`PGPASSFILE`, default `$HOME/.pgpass`), which
    /// is ignored with a warning unless its mode is 0600 or stricter, as libpq does.
    ///
    /// ```
    /// use pgstrata_conn::ConnectOptions;
    ///
    /// let env = |key: &str| match key {
    ///     "PGHOST" => Some("db.internal".to_owned()),
    ///     "POSTGRES_HOST" => Some("ignored.example".to_owned()),
    ///     "POSTGRES_USER" => Some("app".to_owned()),
    ///     _ => None,
    /// };
    /// let opts = ConnectOptions::resolve(Some("postgresql:///appdb"), &env)?;
    /// assert_eq!(opts.to_string(), "postgresql://app@db.internal:5432/appdb");
    /// # Ok::<(), pgstrata_conn::Error>(())
    /// ```
    pub fn resolve(
        conninfo: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let explicit = match conninfo {
            Some(conninfo) => Params::parse(conninfo)?,
            None => Params::default(),
        };
        let lookup = |key: &str| env(key).filter(|value| !value.is_empty());
        let params = explicit
            .or(params_from_env(&lookup, PG_ENV)?)
            .or(postgres_env(&lookup)?);
        let home = lookup("HOME").map(PathBuf::from);
        let passfile = params
            .passfile
            .clone()
            .or_else(|| home.as_ref().map(|home| home.join(".pgpass")));
        Self::finish(params, home, passfile)
    }

    /// `resolve(conninfo, &|k| std::env::var(k).ok())`: settings from the process environment.
    pub fn from_env(conninfo: Option<&str>) -> Result<Self, Error> {
        Self::resolve(conninfo, &|key| std::env::var(key).ok())
    }

    /// Applies the defaults and the password file to layered settings.
    fn finish(
        params: Params,
        home: Option<PathBuf>,
        passfile: Option<PathBuf>,
    ) -> Result<Self, Error> {
        // libpq 16: sslrootcert=system implies verify-full and refuses anything weaker,
        // since the system's roots vouch for names, not for this particular server.
        let sslmode = match (params.sslrootcert.as_deref(), params.sslmode) {
            (Some("system"), None) => SslMode::VerifyFull,
            (Some("system"), Some(mode)) if mode != SslMode::VerifyFull => {
                return Err(Error::conninfo(format!(
                    "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
                )));
            }
            (_, mode) => mode.unwrap_or(SslMode::Prefer),
        };
        let port = params.port.unwrap_or(5432);
        let (host, hostaddr) = match (params.host, params.hostaddr) {
            (Some(host), hostaddr) => (host, hostaddr),
            // Only an address: connect to it, and check certificates against it.
            (None, Some(addr)) => (addr.to_string(), None),
            (None, None) => (default_host(port), None),
        };
        let user = match params.user {
            Some(user) => user,
            None => whoami::fallible::username().map_err(|e| {
                Error::conninfo(format!(
                    "no user name given and the OS user name is unknown ({e})"
                ))
            })?,
        };
        let dbname = params.dbname.unwrap_or_else(|| user.clone());
        let mut opts = ConnectOptions {
            host,
            hostaddr,
            port,
            user,
            password: params.password,
            dbname,
            sslmode,
            sslrootcert: params.sslrootcert,
            sslcert: params.sslcert,
            sslkey: params.sslkey,
            application_name: params.application_name,
            fallback_application_name: params.fallback_application_name,
            connect_timeout: params
                .connect_timeout
                .map_or(ConnectTimeout::Default, ConnectTimeout::from_seconds),
            options: params.options,
            channel_binding: params.channel_binding,
            target_session_attrs: params.target_session_attrs,
            home,
        };
        if opts.password.is_none()
            && let Some(passfile) = passfile
        {
            opts.password = pgpass::lookup(&passfile, &opts.pgpass_target());
        }
        Ok(opts)
    }

    fn pgpass_target(&self) -> pgpass::Target<'_> {
        // libpq looks up "localhost" for connections through the default socket directory.
        let host = if DEFAULT_SOCKET_DIRS.contains(&self.host.as_str())
            || self.host == "/run/postgresql"
        {
            "localhost"
        } else {
            &self.host
        };
        pgpass::Target {
            host,
            port: self.port,
            dbname: &self.dbname,
            user: &self.user,
        }
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host: a name, an IP address, or a Unix socket directory (starting with `/`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (also used to name the Unix socket file, `.s.PGSQL.<port>`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password, if one was found. Handle with care; never log it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The configured `sslmode`. Unix-socket connections never use TLS whatever this says.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// True if the connection goes through a Unix socket (so TLS is never used).
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/') && self.hostaddr.is_none()
    }

    /// The `application_name` reported to the server, if any: the user's (URL, conninfo,
    /// `PGAPPNAME`), else the fallback (`fallback_application_name`, or the program's name
    /// from [`with_application_name`](Self::with_application_name)).
    pub fn application_name(&self) -> Option<&str> {
        self.application_name
            .as_deref()
            .or(self.fallback_application_name.as_deref())
    }

    /// How long each connection attempt may take (TCP connect, TLS handshake, startup and
    /// authentication); `None` waits forever (`connect_timeout=0`). Without a setting this
    /// is [`DEFAULT_CONNECT_TIMEOUT`](Self::DEFAULT_CONNECT_TIMEOUT).
    pub fn connect_timeout(&self) -> Option<Duration> {
        match self.connect_timeout {
            ConnectTimeout::Default => Some(Self::DEFAULT_CONNECT_TIMEOUT),
            ConnectTimeout::Never => None,
            ConnectTimeout::After(timeout) => Some(timeout),
        }
    }

    /// True if the connect timeout was set (`connect_timeout`, `PGCONNECT_TIMEOUT`,
    /// [`with_connect_timeout`](Self::with_connect_timeout)) rather than the default.
    pub fn connect_timeout_is_set(&self) -> bool {
        self.connect_timeout != ConnectTimeout::Default
    }

    /// Same server, other database (for CREATE/DROP DATABASE via the `postgres` database,
    /// and per-test databases). The password is kept; it was found for the original database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        Self {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// Same settings, other user; the password is cleared (it belonged to the other user).
    pub fn with_user(&self, user: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: None,
            ..self.clone()
        }
    }

    /// Same settings with this password.
    pub fn with_password(&self, password: &str) -> Self {
        Self {
            password: Some(password.to_owned()),
            ..self.clone()
        }
    }

    /// Same settings, naming the program that connects: the server sees `name` as
    /// `application_name` (in `pg_stat_activity`, logs) **unless the user chose one** in the
    /// URL, the conninfo string or `PGAPPNAME`, which always wins. This is libpq's
    /// `fallback_application_name`, which `psql` and `pg_dump` use the same way; it replaces
    /// a `fallback_application_name` from the settings.
    ///
    /// ```
    /// use pgstrata_conn::ConnectOptions;
    ///
    /// let plain = ConnectOptions::parse("host=db.example")?;
    /// assert_eq!(plain.with_application_name("strata").application_name(), Some("strata"));
    /// let chosen = ConnectOptions::parse("host=db.example application_name=billing-deploy")?;
    /// assert_eq!(
    ///     chosen.with_application_name("strata").application_name(),
    ///     Some("billing-deploy")
    /// );
    /// # Ok::<(), pgstrata_conn::Error>(())
    /// ```
    pub fn with_application_name(&self, name: &str) -> Self {
        Self {
            fallback_application_name: Some(name.to_owned()),
            ..self.clone()
        }
    }

    /// Same settings with this connect timeout per attempt, used as given (libpq's raising of
    /// 1 second to 2 applies to the `connect_timeout` keyword only); [`Duration::ZERO`] waits
    /// forever, like `connect_timeout=0`.
    pub fn with_connect_timeout(&self, timeout: Duration) -> Self {
        Self {
            connect_timeout: if timeout.is_zero() {
                ConnectTimeout::Never
            } else {
                ConnectTimeout::After(timeout)
            },
            ..self.clone()
        }
    }

    /// The settings as a libpq URL without the password, e.g.
    /// `postgresql://alice@db.example:5432/app?sslmode=verify-full`, or
    /// `postgresql://alice@/app?host=/var/run/postgresql&port=5432` for a Unix socket.
    /// Parsing it gives the same settings, minus the password.
    pub fn redacted(&self) -> String {
        self.url(true)
    }

    /// The redacted URL for error messages: without `fallback_application_name`, which is
    /// usually the program's own name and says nothing about where the connection goes.
    pub(crate) fn target(&self) -> String {
        self.url(false)
    }

    fn url(&self, with_fallback_application_name: bool) -> String {
        let mut url = format!("postgresql://{}@", encode(&self.user, COMPONENT));
        let mut query: Vec<(&str, String)> = Vec::new();
        if self.host.starts_with('/') {
            query.push(("host", self.host.clone()));
            query.push(("port", self.port.to_string()));
        } else if self.host.contains(':') {
            url.push_str(&format!("[{}]:{}", self.host, self.port));
        } else {
            url.push_str(&format!("{}:{}", encode(&self.host, COMPONENT), self.port));
        }
        url.push('/');
        url.push_str(&encode(&self.dbname, COMPONENT));
        let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let optional = [
            ("hostaddr", self.hostaddr.map(|a| a.to_string())),
            (
                "sslmode",
                (self.sslmode != SslMode::Prefer).then(|| self.sslmode.to_string()),
            ),
            ("sslrootcert", self.sslrootcert.clone()),
            ("sslcert", path_text(&self.sslcert)),
            ("sslkey", path_text(&self.sslkey)),
            ("application_name", self.application_name.clone()),
            (
                "fallback_application_name",
                self.fallback_application_name
                    .clone()
                    .filter(|_| with_fallback_application_name),
            ),
            ("connect_timeout", self.connect_timeout.keyword_value()),
            ("options", self.options.clone()),
            ("channel_binding", self.channel_binding.map(str::to_owned)),
            (
                "target_session_attrs",
                self.target_session_attrs.map(str::to_owned),
            ),
        ];
        query.extend(
            optional
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v))),
        );
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&encode(value, QUERY_VALUE));
        }
        url
    }

    /// The settings as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, …), for running `psql`, `pg_dump` and friends without putting the
    /// password on their command line.
    pub fn pg_env(&self) -> Vec<(&'static str, String)> {
        let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let vars = [
            ("PGHOST", Some(self.host.clone())),
            ("PGHOSTADDR", self.hostaddr.map(|a| a.to_string())),
            ("PGPORT", Some(self.port.to_string())),
            ("PGUSER", Some(self.user.clone())),
            ("PGPASSWORD", self.password.clone()),
            ("PGDATABASE", Some(self.dbname.clone())),
            ("PGSSLMODE", Some(self.sslmode.to_string())),
            ("PGSSLROOTCERT", self.sslrootcert.clone()),
            ("PGSSLCERT", path_text(&self.sslcert)),
            ("PGSSLKEY", path_text(&self.sslkey)),
            ("PGAPPNAME", self.application_name().map(str::to_owned)),
            // The effective value, default included: the tools must not hang either.
            (
                "PGCONNECT_TIMEOUT",
                Some(match self.connect_timeout() {
                    None => "0".to_owned(),
                    Some(timeout) => timeout.as_secs().max(1).to_string(),
                }),
            ),
            ("PGOPTIONS", self.options.clone()),
            ("PGCHANNELBINDING", self.channel_binding.map(str::to_owned)),
            (
                "PGTARGETSESSIONATTRS",
                self.target_session_attrs.map(str::to_owned),
            ),
        ];
        vars.into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect()
    }

    /// The equivalent `tokio_postgres::Config`. TLS is decided here: Unix sockets never
    /// use it, `allow`/`prefer` map to tokio-postgres' `Prefer`, and `require`/`verify-*`
    /// to `Require`; how certificates are checked is up to the connector from
    /// [`connect`](Self::connect).
    pub fn to_tokio_postgres_config(&self) -> tokio_postgres::Config {
        let mut config = self.config_without_timeout();
        // tokio-postgres bounds only the TCP connect with this; `connect` bounds the whole
        // set-up of each attempt instead.
        if let Some(timeout) = self.connect_timeout() {
            config.connect_timeout(timeout);
        }
        config
    }

    /// The tokio-postgres settings, minus its connect timeout (which would cut the TCP
    /// connect with a message of its own before ours could say what timed out).
    pub(crate) fn config_without_timeout(&self) -> tokio_postgres::Config {
        use tokio_postgres::config::{ChannelBinding, SslMode as TpSslMode, TargetSessionAttrs};

        let mut config = tokio_postgres::Config::new();
        match self.hostaddr {
            // libpq connects to hostaddr over TCP even if host names a socket directory.
            Some(addr) if self.host.starts_with('/') => config.host(addr.to_string()),
            Some(addr) => config.host(&self.host).hostaddr(addr),
            None => config.host(&self.host),
        };
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .ssl_mode(match self.effective_sslmode() {
                SslMode::Disable => TpSslMode::Disable,
                SslMode::Allow | SslMode::Prefer => TpSslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => TpSslMode::Require,
            });
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(name) = self.application_name() {
            config.application_name(name);
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        match self.channel_binding {
            Some("disable") => config.channel_binding(ChannelBinding::Disable),
            Some("require") => config.channel_binding(ChannelBinding::Require),
            _ => config.channel_binding(ChannelBinding::Prefer),
        };
        if self.target_session_attrs == Some("read-write") {
            config.target_session_attrs(TargetSessionAttrs::ReadWrite);
        }
        config
    }

    /// Where a connection goes, for messages: `host:port`, `[::1]:port`, or the socket file.
    pub(crate) fn server(&self) -> String {
        match self.hostaddr {
            Some(addr) => std::net::SocketAddr::new(addr, self.port).to_string(),
            None if self.host.starts_with('/') => {
                format!("{}/.s.PGSQL.{}", self.host.trim_end_matches('/'), self.port)
            }
            None => match self.host.parse::<IpAddr>() {
                Ok(addr) => std::net::SocketAddr::new(addr, self.port).to_string(),
                Err(_) => format!("{}:{}", self.host, self.port),
            },
        }
    }

    /// The host name to look up, if the connection needs a look-up (not a socket, not an
    /// address).
    pub(crate) fn host_to_resolve(&self) -> Option<&str> {
        (self.hostaddr.is_none()
            && !self.host.starts_with('/')
            && self.host.parse::<IpAddr>().is_err())
        .then_some(self.host.as_str())
    }

    /// The sslmode actually used: Unix sockets never use TLS (as in libpq; tokio-postgres
    /// would otherwise try, and fail, with `require`).
    fn effective_sslmode(&self) -> SslMode {
        if self.is_unix_socket() {
            SslMode::Disable
        } else {
            self.sslmode
        }
    }

    pub(crate) fn tls_settings(&self) -> TlsSettings<'_> {
        TlsSettings {
            sslmode: self.effective_sslmode(),
            sslrootcert: self.sslrootcert.as_deref(),
            sslcert: self.sslcert.as_deref(),
            sslkey: self.sslkey.as_deref(),
            home: self.home.as_deref(),
        }
    }
}

impl FromStr for ConnectOptions {
    type Err = Error;

    /// [`ConnectOptions::parse`], for `str::parse` and clap's `value_parser`.
    fn from_str(conninfo: &str) -> Result<Self, Error> {
        Self::parse(conninfo)
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("application_name", &self.application_name)
            .field("fallback_application_name", &self.fallback_application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("channel_binding", &self.channel_binding)
            .field("target_session_attrs", &self.target_session_attrs)
            .finish()
    }
}

impl fmt::Display for ConnectOptions {
    /// The [redacted](Self::redacted) URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Characters left alone in user, host and database names: RFC 3986 "unreserved".
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Query values may also keep `/` (readable socket directories) and `:`.
const QUERY_VALUE: &AsciiSet = &COMPONENT.remove(b'/').remove(b':');

fn encode(text: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(text, set).to_string()
}

fn default_host(port: u16) -> String {
    DEFAULT_SOCKET_DIRS
        .iter()
        .find(|dir| Path::new(dir).join(format!(".s.PGSQL.{port}")).exists())
        .map_or_else(|| "localhost".to_owned(), |dir| (*dir).to_owned())
}

fn params_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    table: &[(&str, &str)],
) -> Result<Params, Error> {
    let mut params = Params::default();
    for (var, key) in table {
        if let Some(value) = env(var) {
            params.set(key, &value).map_err(|e| in_variable(var, e))?;
        }
    }
    Ok(params)
}

fn postgres_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Params, Error> {
    let mut params = params_from_env(env, POSTGRES_ENV)?;
    if let Some(value) = env("POSTGRES_SSL") {
        params.sslmode = match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(SslMode::Require),
            "false" | "0" | "no" | "off" => Some(SslMode::Disable),
            _ => {
                return Err(Error::conninfo(format!(
                    "invalid POSTGRES_SSL value: \"{value}\" (expected true or false)"
                )));
            }
        };
    }
    Ok(params)
}

fn in_variable(var: &str, error: Error) -> Error {
    match error {
        Error::InvalidConnInfo { message } => Error::conninfo(format!("in {var}: {message}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn resolve(conninfo: Option<&str>, vars: &[(&str, &str)]) -> Result<ConnectOptions, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ConnectOptions::resolve(conninfo, &move |key| vars.get(key).cloned())
    }

    fn resolved(conninfo: Option<&str>, vars: &[(&str, &str)]) -> ConnectOptions {
        resolve(conninfo, vars).unwrap_or_else(|e| panic!("{conninfo:?} {vars:?}: {e}"))
    }

    #[test]
    fn explicit_beats_pg_env_beats_postgres_env() {
        let vars = [
            ("PGHOST", "pg.example"),
            ("PGPORT", "6001"),
            ("PGUSER", "pguser"),
            ("POSTGRES_HOST", "postgres.example"),
            ("POSTGRES_PORT", "6002"),
            ("POSTGRES_USER", "postgresuser"),
            ("POSTGRES_DATABASE", "postgresdb"),
            ("POSTGRES_PASSWORD", "postgres-pw"),
        ];
        let opts = resolved(Some("postgresql://explicit.example/explicitdb"), &vars);
        assert_eq!(opts.host(), "explicit.example");
        assert_eq!(opts.port(), 6001);
        assert_eq!(opts.user(), "pguser");
        assert_eq!(opts.dbname(), "explicitdb");
        assert_eq!(opts.password(), Some("postgres-pw"));

        let opts = resolved(None, &vars);
        assert_eq!(opts.host(), "pg.example");
        assert_eq!(opts.dbname(), "postgresdb");

        let opts = resolved(None, &vars[3..]);
        assert_eq!(opts.host(), "postgres.example");
        assert_eq!(opts.port(), 6002);
        assert_eq!(opts.user(), "postgresuser");
    }

    #[test]
    fn password_precedence() {
        let all = [
            ("PGPASSWORD", "from-pgpassword"),
            ("POSTGRES_PASSWORD", "from-postgres-password"),
        ];
        let explicit = resolved(Some("host=h password=explicit"), &all);
        assert_eq!(explicit.password(), Some("explicit"));
        assert_eq!(
            resolved(Some("host=h"), &all).password(),
            Some("from-pgpassword")
        );
        assert_eq!(
            resolved(Some("host=h"), &all[1..]).password(),
            Some("from-postgres-password")
        );
        assert_eq!(resolved(Some("host=h"), &[]).password(), None);
    }

    #[test]
    fn every_pg_variable_is_read() {
        let opts = resolved(
            None,
            &[
                ("PGHOST", "h.example"),
                ("PGHOSTADDR", "10.0.0.1"),
                ("PGPORT", "7000"),
                ("PGUSER", "u"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "d"),
                ("PGSSLMODE", "verify-ca"),
                ("PGSSLROOTCERT", "/ca.pem"),
                ("PGSSLCERT", "/c.pem"),
                ("PGSSLKEY", "/k.pem"),
                ("PGAPPNAME", "app"),
                ("PGCONNECT_TIMEOUT", "7"),
                ("PGOPTIONS", "-c search_path=x"),
                ("PGCHANNELBINDING", "require"),
                ("PGTARGETSESSIONATTRS", "read-write"),
            ],
        );
        assert_eq!(
            opts.redacted(),
            "postgresql://u@h.example:7000/d?hostaddr=10.0.0.1&sslmode=verify-ca&sslrootcert=/ca.pem\
             &sslcert=/c.pem&sslkey=/k.pem&application_name=app&connect_timeout=7\
             &options=-c%20search_path%3Dx&channel_binding=require&target_session_attrs=read-write"
        );
        assert_eq!(opts.password(), Some("pw"));
    }

    #[test]
    fn postgres_ssl_and_empty_variables() {
        let cases = [
            ("true", SslMode::Require),
            ("TRUE", SslMode::Require),
            ("1", SslMode::Require),
            ("false", SslMode::Disable),
        ];
        for (value, mode) in cases {
            let opts = resolved(Some("host=h"), &[("POSTGRES_SSL", value)]);
            assert_eq!(opts.sslmode(), mode, "POSTGRES_SSL={value}");
        }
        // PGSSLMODE beats POSTGRES_SSL; empty variables count as unset.
        let opts = resolved(
            Some("host=h"),
            &[("PGSSLMODE", "verify-full"), ("POSTGRES_SSL", "true")],
        );
        assert_eq!(opts.sslmode(), SslMode::VerifyFull);
        let opts = resolved(
            Some("host=h"),
            &[("PGSSLMODE", ""), ("PGPORT", ""), ("POSTGRES_SSL", "true")],
        );
        assert_eq!((opts.sslmode(), opts.port()), (SslMode::Require, 5432));
        let message = resolve(None, &[("POSTGRES_SSL", "maybe")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("POSTGRES_SSL"), "{message}");
    }

    #[test]
    fn bad_variables_are_named_in_errors() {
        for (var, value) in [
            ("PGPORT", "port"),
            ("PGSSLMODE", "on"),
            ("POSTGRES_PORT", "x"),
            ("PGHOST", "a,b"),
        ] {
            let message = match resolve(Some("host=h"), &[(var, value)]) {
                Ok(_) if var == "PGHOST" => continue, // host=h wins, PGHOST is never read
                Ok(opts) => panic!("{var}={value} accepted: {opts:?}"),
                Err(e) => e.to_string(),
            };
            assert!(message.contains(&format!("in {var}:")), "{message}");
        }
        let message = resolve(None, &[("PGHOST", "a,b")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("in PGHOST: multiple hosts"), "{message}");
    }

    #[test]
    fn defaults() {
        let opts = resolved(None, &[]);
        let os_user = whoami::fallible::username().unwrap();
        assert_eq!(opts.user(), os_user);
        assert_eq!(opts.dbname(), os_user);
        assert_eq!(opts.port(), 5432);
        assert_eq!(opts.sslmode(), SslMode::Prefer);
        assert_eq!(opts.connect_timeout(), Some(Duration::from_secs(30)));
        assert!(!opts.connect_timeout_is_set());
        assert_eq!(opts.host(), default_host(5432));
        let with_user = resolved(Some("user=carol"), &[]);
        assert_eq!(with_user.dbname(), "carol");
        // Only an address: it is also the name certificates are checked against.
        let addr_only = resolved(Some("hostaddr=::1"), &[]);
        assert_eq!(
            (addr_only.host(), addr_only.is_unix_socket()),
            ("::1", false)
        );
    }

    #[test]
    fn default_host_prefers_a_live_socket() {
        // A port nobody uses: no socket file exists in the default directories.
        assert_eq!(default_host(1), "localhost");
    }

    #[test]
    fn unix_sockets_never_use_tls() {
        use tokio_postgres::config::SslMode as TpSslMode;
        let socket = resolved(Some("host=/var/run/postgresql sslmode=verify-full"), &[]);
        assert!(socket.is_unix_socket());
        assert_eq!(socket.sslmode(), SslMode::VerifyFull);
        assert_eq!(
            socket.to_tokio_postgres_config().get_ssl_mode(),
            TpSslMode::Disable
        );
        let tcp = resolved(Some("host=db.example sslmode=verify-full"), &[]);
        assert_eq!(
            tcp.to_tokio_postgres_config().get_ssl_mode(),
            TpSslMode::Require
        );
        let allow = resolved(Some("host=db.example sslmode=allow"), &[]);
        assert_eq!(
            allow.to_tokio_postgres_config().get_ssl_mode(),
            TpSslMode::Prefer
        );
        // hostaddr wins over a socket directory, as in libpq: TCP, so TLS applies.
        let addr = resolved(Some("host=/tmp hostaddr=127.0.0.1 sslmode=require"), &[]);
        assert!(!addr.is_unix_socket());
        assert_eq!(
            addr.to_tokio_postgres_config().get_ssl_mode(),
            TpSslMode::Require
        );
    }

    #[test]
    fn sslrootcert_system_means_verify_full() {
        let opts = resolved(Some("host=h sslrootcert=system"), &[]);
        assert_eq!(opts.sslmode(), SslMode::VerifyFull);
        for mode in ["disable", "prefer", "require", "verify-ca"] {
            let message = resolve(
                Some(&format!("host=h sslrootcert=system sslmode={mode}")),
                &[],
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(
                message.contains(&format!("weak sslmode \"{mode}\"")),
                "{mode}: {message}"
            );
        }
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let timeout = |value: &str| {
            resolved(Some(&format!("connect_timeout={value}")), &[]).connect_timeout()
        };
        assert_eq!(timeout("0"), None);
        assert_eq!(timeout("-1"), None);
        assert_eq!(timeout("1"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("30"), Some(Duration::from_secs(30)));
        assert_eq!(timeout("600"), Some(Duration::from_secs(600)));
        let opts = resolved(Some("host=h"), &[]).with_connect_timeout(Duration::from_millis(500));
        assert_eq!(opts.connect_timeout(), Some(Duration::from_millis(500)));
        assert!(opts.redacted().contains("connect_timeout=1"));
        let forever = opts.with_connect_timeout(Duration::ZERO);
        assert_eq!(forever.connect_timeout(), None);
        assert!(forever.connect_timeout_is_set());
        // Waiting forever must survive the round trip through the URL and the variables.
        assert!(forever.redacted().ends_with("?connect_timeout=0"));
        assert!(
            forever
                .pg_env()
                .contains(&("PGCONNECT_TIMEOUT", "0".to_owned()))
        );
        let from_env = resolved(Some("host=h"), &[("PGCONNECT_TIMEOUT", "3")]);
        assert_eq!(from_env.connect_timeout(), Some(Duration::from_secs(3)));
        // The default: bounded, and handed on to libpq tools, but not shown in the URL.
        let default = resolved(Some("host=h"), &[]);
        assert!(!default.redacted().contains("connect_timeout"));
        assert!(
            default
                .pg_env()
                .contains(&("PGCONNECT_TIMEOUT", "30".to_owned()))
        );
    }

    #[test]
    fn fallback_application_name() {
        let opts = resolved(Some("host=h fallback_application_name=psql"), &[]);
        assert_eq!(opts.application_name(), Some("psql"));
        let opts = resolved(
            Some("host=h fallback_application_name=psql"),
            &[("PGAPPNAME", "mine")],
        );
        assert_eq!(opts.application_name(), Some("mine"));
    }

    #[test]
    fn the_users_application_name_beats_the_programs() {
        let program = "strata 1.0";
        let cases = [
            (Some("host=h application_name=myapp"), vec![], "myapp"),
            (
                Some("postgresql://h/d?application_name=myapp"),
                vec![],
                "myapp",
            ),
            (Some("host=h"), vec![("PGAPPNAME", "myapp")], "myapp"),
            // The program's name replaces a fallback, as psql's does.
            (
                Some("host=h fallback_application_name=other"),
                vec![],
                program,
            ),
            (Some("host=h"), vec![], program),
        ];
        for (conninfo, vars, expected) in cases {
            let opts = resolved(conninfo, &vars).with_application_name(program);
            assert_eq!(
                opts.application_name(),
                Some(expected),
                "{conninfo:?} {vars:?}"
            );
            assert_eq!(
                opts.to_tokio_postgres_config().get_application_name(),
                Some(expected)
            );
            assert!(opts.pg_env().contains(&("PGAPPNAME", expected.to_owned())));
        }
        // The URL keeps both, so parsing it gives the same settings; messages leave the
        // program's name out.
        let opts = resolved(Some("host=h user=u dbname=d"), &[]).with_application_name(program);
        assert_eq!(
            opts.redacted(),
            "postgresql://u@h:5432/d?fallback_application_name=strata%201.0"
        );
        assert_eq!(opts.target(), "postgresql://u@h:5432/d");
        let reparsed = ConnectOptions::parse(&opts.redacted()).unwrap();
        assert_eq!(reparsed.application_name(), Some(program));
    }

    fn write_pgpass(dir: &Path, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join(".pgpass");
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn pgpass_is_the_last_resort() {
        let home = tempfile::tempdir().unwrap();
        let home_text = home.path().to_str().unwrap();
        write_pgpass(
            home.path(),
            "db.example:5432:app:alice:from-pgpass\nlocalhost:5432:*:*:socket-pw\n",
            0o600,
        );
        let conninfo = Some("host=db.example user=alice dbname=app");
        let opts = resolved(conninfo, &[("HOME", home_text)]);
        assert_eq!(opts.password(), Some("from-pgpass"));
        let opts = resolved(
            conninfo,
            &[("HOME", home_text), ("POSTGRES_PASSWORD", "env")],
        );
        assert_eq!(opts.password(), Some("env"));
        // The default socket directory matches "localhost", as in libpq.
        let opts = resolved(Some("host=/var/run/postgresql"), &[("HOME", home_text)]);
        assert_eq!(opts.password(), Some("socket-pw"));
        let opts = resolved(Some("host=/srv/sockets"), &[("HOME", home_text)]);
        assert_eq!(opts.password(), None);
        // No match: no password.
        let opts = resolved(
            Some("host=db.example user=bob dbname=app"),
            &[("HOME", home_text)],
        );
        assert_eq!(opts.password(), None);
        // Readable by others: ignored.
        write_pgpass(home.path(), "*:*:*:*:leaky\n", 0o644);
        assert_eq!(resolved(conninfo, &[("HOME", home_text)]).password(), None);
    }

    #[test]
    fn pgpassfile_and_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_pgpass(dir.path(), "*:*:*:*:custom\n", 0o600);
        let path_text = path.to_str().unwrap();
        let opts = resolved(Some("host=h"), &[("PGPASSFILE", path_text)]);
        assert_eq!(opts.password(), Some("custom"));
        let conninfo = format!("host=h passfile={path_text}");
        assert_eq!(resolved(Some(&conninfo), &[]).password(), Some("custom"));
        // parse() honours an explicit passfile, but not ~/.pgpass or the environment.
        assert_eq!(
            ConnectOptions::parse(&conninfo).unwrap().password(),
            Some("custom")
        );
    }

    #[test]
    fn redacted_url_round_trips() {
        let cases = [
            (
                "postgresql://alice:s3cret@db.example/app?sslmode=verify-full",
                "postgresql://alice@db.example:5432/app?sslmode=verify-full",
            ),
            (
                "host=/var/run/postgresql port=5433 user=postgres dbname=t_1",
                "postgresql://postgres@/t_1?host=/var/run/postgresql&port=5433",
            ),
            (
                "postgresql://%C3%A9ve:pw@[::1]:6000/my%20db?application_name=a%26b",
                "postgresql://%C3%A9ve@[::1]:6000/my%20db?application_name=a%26b",
            ),
            (
                "host=h user='a b' password='x y' dbname=d options='-c a=b' sslmode=disable",
                "postgresql://a%20b@h:5432/d?sslmode=disable&options=-c%20a%3Db",
            ),
        ];
        for (conninfo, expected) in cases {
            let opts: ConnectOptions = conninfo.parse().unwrap();
            let redacted = opts.redacted();
            assert_eq!(redacted, expected);
            assert_eq!(opts.to_string(), redacted);
            let reparsed = ConnectOptions::parse(&redacted).unwrap();
            assert_eq!(reparsed.redacted(), redacted, "round trip of {redacted}");
            assert_eq!(reparsed.password(), None);
        }
    }

    #[test]
    fn password_never_shown() {
        let secret = "Sup3r-s3cret!";
        let opts = ConnectOptions::parse(&format!(
            "postgresql://alice:{secret}@db.example/app?sslmode=require"
        ))
        .unwrap();
        assert_eq!(opts.password(), Some(secret));
        for text in [
            opts.to_string(),
            opts.redacted(),
            format!("{opts:?}"),
            format!("{opts:#?}"),
            format!("{:?}", opts.with_dbname("postgres")),
        ] {
            assert!(!text.contains(secret), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        assert!(format!("{opts:?}").contains("password: Some(\"<redacted>\")"));
        // pg_env is for child processes and must carry it.
        assert!(opts.pg_env().contains(&("PGPASSWORD", secret.to_owned())));
    }

    #[test]
    fn with_methods() {
        let opts = ConnectOptions::parse("postgresql://alice:pw@h/app").unwrap();
        let other = opts.with_dbname("postgres");
        assert_eq!(
            (other.dbname(), other.user(), other.password()),
            ("postgres", "alice", Some("pw"))
        );
        let bob = opts.with_user("bob");
        assert_eq!((bob.user(), bob.password()), ("bob", None));
        assert_eq!(bob.with_password("x").password(), Some("x"));
        assert_eq!(opts.dbname(), "app");
    }

    #[test]
    fn pg_env_describes_the_settings() {
        let opts = ConnectOptions::parse(
            "host=/run/pg port=6000 user=u dbname=d sslmode=require application_name=a",
        )
        .unwrap();
        let env = opts.pg_env();
        for expected in [
            ("PGHOST", "/run/pg"),
            ("PGPORT", "6000"),
            ("PGUSER", "u"),
            ("PGDATABASE", "d"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "a"),
        ] {
            assert!(
                env.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} missing from {env:?}"
            );
        }
        assert!(!env.iter().any(|(key, _)| *key == "PGPASSWORD"));
        // Feeding it back through resolve gives the same settings (the default connect
        // timeout becoming an explicit one).
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            resolved(None, &vars).redacted(),
            opts.with_connect_timeout(Duration::from_secs(30))
                .redacted()
        );
    }
}
