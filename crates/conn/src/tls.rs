//! The rustls client configuration for each `sslmode`.
//!
//! rustls always verifies certificates, so the two weaker libpq behaviours need verifiers
//! of our own: [`AcceptAnyCert`] (prefer, and require without a root certificate) and
//! [`VerifyChainOnly`] (verify-ca, and require with a root certificate). Both still check
//! the handshake signatures, so the server must hold the key of the certificate it shows.
//! verify-full uses rustls' standard WebPKI verifier.
//!
//! One rule is added to both verifying modes, because OpenSSL (hence libpq and `psql`)
//! has it and WebPKI does not: a server certificate that is byte for byte one of the
//! trusted root certificates is trusted as it is ([`TrustedAsIs`]). This is the usual
//! self-signed server certificate (`openssl req -x509`, which marks it `CA:TRUE`), which
//! WebPKI refuses as "CaUsedAsEndEntity". Its validity dates and purpose are still checked,
//! and the host name for verify-full.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;
use x509_cert::der::Decode;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_SERVER_AUTH};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};

use crate::{Error, SslMode};

/// What the TLS layer needs from the connection settings.
pub(crate) struct TlsSettings<'a> {
    pub sslmode: SslMode,
    pub sslrootcert: Option<&'a str>,
    pub sslcert: Option<&'a Path>,
    pub sslkey: Option<&'a Path>,
    /// The home directory, for libpq's defaults under `~/.postgresql/`.
    pub home: Option<&'a Path>,
}

/// How the server certificate is checked.
enum Verification {
    None,
    ChainOnly(TrustedRoots),
    Full(TrustedRoots),
}

/// The trusted root certificates: as a store for WebPKI's path building, and as given, for
/// the exact-match rule of [`TrustedAsIs`].
struct TrustedRoots {
    store: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
}

/// Where root certificates come from.
enum Roots {
    System,
    File(PathBuf),
}

/// Builds the TLS connector for `settings`. Files are read here, so a missing root
/// certificate is reported before any network traffic.
pub(crate) fn connector(settings: &TlsSettings<'_>) -> Result<MakeRustlsConnect, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("cannot configure TLS versions: {e}")))?;
    let builder = match verification(settings)? {
        Verification::Full(roots) => {
            let standard =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots.store), provider)
                    .build()
                    .map_err(|e| tls_error(format!("cannot verify server certificates: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TrustedAsIs {
                    roots: roots.certs,
                    check_name: true,
                    standard,
                }))
        }
        Verification::ChainOnly(roots) => {
            let standard = Arc::new(VerifyChainOnly {
                roots: Arc::new(roots.store),
                provider,
            });
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TrustedAsIs {
                    roots: roots.certs,
                    check_name: false,
                    standard,
                }))
        }
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider })),
    };
    // Without TLS the config is never used: don't let stray files in ~/.postgresql fail
    // a plain-text or Unix-socket connection.
    let identity = if settings.sslmode == SslMode::Disable {
        None
    } else {
        client_identity(settings)?
    };
    let config = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_error(format!("unusable client certificate or key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn verification(settings: &TlsSettings<'_>) -> Result<Verification, Error> {
    let roots = match settings.sslrootcert {
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(PathBuf::from(path))),
        None => settings
            .home
            .map(|home| Roots::File(home.join(".postgresql/root.crt"))),
    };
    match settings.sslmode {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => Ok(Verification::None),
        // libpq: "if a root CA file exists, the behavior of sslmode=require will be the same
        // as that of verify-ca".
        SslMode::Require => match roots {
            Some(Roots::File(path)) if !path.exists() => {
                if settings.sslrootcert.is_some() {
                    tracing::warn!(
                        path = %path.display(),
                        "sslrootcert does not exist; sslmode=require will not verify the server certificate"
                    );
                }
                Ok(Verification::None)
            }
            Some(roots) => Ok(Verification::ChainOnly(load_roots(&roots)?)),
            None => Ok(Verification::None),
        },
        SslMode::VerifyCa => Ok(Verification::ChainOnly(load_required_roots(roots)?)),
        SslMode::VerifyFull => Ok(Verification::Full(load_required_roots(roots)?)),
    }
}

fn load_required_roots(roots: Option<Roots>) -> Result<TrustedRoots, Error> {
    match roots {
        Some(Roots::File(path)) if !path.exists() => Err(tls_error(format!(
            "root certificate file \"{}\" does not exist; either provide the file, use the \
             system's trusted roots with sslrootcert=system, or change sslmode to disable server \
             certificate verification",
            path.display()
        ))),
        Some(roots) => load_roots(&roots),
        None => Err(tls_error(
            "no root certificate: set sslrootcert (a file, or \"system\"); the default \
             ~/.postgresql/root.crt cannot be used because the home directory is unknown",
        )),
    }
}

fn load_roots(roots: &Roots) -> Result<TrustedRoots, Error> {
    let mut store = RootCertStore::empty();
    let mut certs = Vec::new();
    match roots {
        Roots::System => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "while loading the system's root certificates");
            }
            for cert in native.certs {
                if store.add(cert.clone()).is_ok() {
                    certs.push(cert);
                }
            }
            if store.is_empty() {
                tracing::debug!("no system root certificates found; using the webpki-roots set");
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        Roots::File(path) => {
            for cert in read_certificates(path, "root certificate file")? {
                store.add(cert.clone()).map_err(|e| {
                    tls_error(format!("bad certificate in \"{}\": {e}", path.display()))
                })?;
                certs.push(cert);
            }
        }
    }
    Ok(TrustedRoots { store, certs })
}

fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("cannot parse {what} \"{}\": {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "no certificates found in {what} \"{}\"",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate and key: `sslcert`/`sslkey`, else libpq's defaults
/// `~/.postgresql/postgresql.{crt,key}`. As in libpq, a missing certificate file just means
/// "no client certificate".
fn client_identity(
    settings: &TlsSettings<'_>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Error> {
    let in_home = |name: &str| {
        settings
            .home
            .map(|home| home.join(".postgresql").join(name))
    };
    let Some(cert_path) = settings
        .sslcert
        .map(Path::to_path_buf)
        .or_else(|| in_home("postgresql.crt"))
        .filter(|path| path.exists())
    else {
        return Ok(None);
    };
    let certs = read_certificates(&cert_path, "client certificate file")?;
    let Some(key_path) = settings
        .sslkey
        .map(Path::to_path_buf)
        .or_else(|| in_home("postgresql.key"))
    else {
        return Err(tls_error(format!(
            "certificate \"{}\" is present, but no private key file (set sslkey)",
            cert_path.display()
        )));
    };
    check_key_permissions(&key_path)?;
    let pem = read_file(&key_path, "private key file")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        tls_error(format!(
            "cannot read a private key from \"{}\": {e}",
            key_path.display()
        ))
    })?;
    Ok(Some((certs, key)))
}

/// libpq refuses private keys that others can read.
fn check_key_permissions(path: &Path) -> Result<(), Error> {
    let metadata = fs::metadata(path).map_err(|error| Error::Io {
        what: "private key file",
        path: path.to_path_buf(),
        error,
    })?;
    let mode = metadata.permissions().mode();
    let owned_by_root = metadata.uid() == 0;
    if !metadata.is_file() {
        return Err(tls_error(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        )));
    }
    if mode & 0o077 != 0 && !(owned_by_root && mode & 0o037 == 0) {
        return Err(tls_error(format!(
            "private key file \"{}\" has group or world access; it must have permissions u=rw \
             (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|error| Error::Io {
        what,
        path: path.to_path_buf(),
        error,
    })
}

fn tls_error(message: impl Into<String>) -> Error {
    Error::Tls {
        message: message.into(),
    }
}

/// libpq's prefer/require without a root certificate: encrypt, but accept any certificate.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// verify-ca and verify-full: a server certificate identical to a trusted root is trusted as
/// it is, after the checks OpenSSL still makes then (validity dates, purpose) and, for
/// verify-full, the host name; any other certificate goes to the `standard` verifier.
#[derive(Debug)]
struct TrustedAsIs {
    /// The trusted root certificates, as given.
    roots: Vec<CertificateDer<'static>>,
    /// verify-full: the server certificate must be valid for the host name.
    check_name: bool,
    /// Chains to a root: rustls' WebPKI verifier (verify-full) or [`VerifyChainOnly`].
    standard: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for TrustedAsIs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self
            .roots
            .iter()
            .any(|root| root.as_ref() == end_entity.as_ref())
        {
            return self.standard.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        check_dates_and_purpose(end_entity, now)?;
        if self.check_name {
            rustls::client::verify_server_name(
                &ParsedCertificate::try_from(end_entity)?,
                server_name,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.standard.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.standard.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.standard.supported_verify_schemes()
    }
}

/// What OpenSSL still checks of a server certificate that is itself a trusted root: it is
/// within its validity dates, and it may serve TLS servers (an extended key usage, if
/// present, includes serverAuth; a key usage, if present, allows a TLS key exchange).
fn check_dates_and_purpose(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let bad = |error| rustls::Error::InvalidCertificate(error);
    let cert = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    let tbs = &cert.tbs_certificate;
    let now = Duration::from_secs(now.as_secs());
    if now < tbs.validity.not_before.to_unix_duration() {
        return Err(bad(CertificateError::NotValidYet));
    }
    if now > tbs.validity.not_after.to_unix_duration() {
        return Err(bad(CertificateError::Expired));
    }
    for extension in tbs.extensions.iter().flatten() {
        let value = extension.extn_value.as_bytes();
        if extension.extn_id == ExtendedKeyUsage::OID {
            let usages = ExtendedKeyUsage::from_der(value)
                .map_err(|_| bad(CertificateError::BadEncoding))?;
            if !usages
                .0
                .iter()
                .any(|oid| *oid == ID_KP_SERVER_AUTH || *oid == ANY_EXTENDED_KEY_USAGE)
            {
                return Err(bad(CertificateError::InvalidPurpose));
            }
        } else if extension.extn_id == KeyUsage::OID {
            let usage =
                KeyUsage::from_der(value).map_err(|_| bad(CertificateError::BadEncoding))?;
            if !(usage.digital_signature() || usage.key_encipherment() || usage.key_agreement()) {
                return Err(bad(CertificateError::InvalidPurpose));
            }
        }
    }
    Ok(())
}

/// libpq's verify-ca: the chain must lead to a trusted root, but the name is not checked.
#[derive(Debug)]
struct VerifyChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for VerifyChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A self-signed certificate made by `openssl req -x509` with these extra extensions.
    fn self_signed(extensions: &[&str]) -> CertificateDer<'static> {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
        ];
        for extension in extensions {
            args.extend(["-addext", extension]);
        }
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args(&args)
            .output()
            .expect("openssl must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = fs::read(dir.path().join("c.pem")).unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap()
    }

    fn at(seconds: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(seconds))
    }

    fn invalid(error: CertificateError) -> Result<(), rustls::Error> {
        Err(rustls::Error::InvalidCertificate(error))
    }

    #[test]
    fn a_certificate_trusted_as_is_must_be_within_its_dates() {
        let cert = self_signed(&[]);
        assert_eq!(check_dates_and_purpose(&cert, UnixTime::now()), Ok(()));
        let in_ten_days = UnixTime::now().as_secs() + 10 * 86_400;
        assert_eq!(
            check_dates_and_purpose(&cert, at(in_ten_days)),
            invalid(CertificateError::Expired)
        );
        assert_eq!(
            check_dates_and_purpose(&cert, at(86_400)),
            invalid(CertificateError::NotValidYet)
        );
    }

    #[test]
    fn a_certificate_trusted_as_is_must_be_fit_for_a_server() {
        let fit = [
            self_signed(&["extendedKeyUsage=serverAuth"]),
            self_signed(&["extendedKeyUsage=clientAuth,serverAuth"]),
            self_signed(&["keyUsage=critical,digitalSignature,keyCertSign"]),
            self_signed(&["keyUsage=keyAgreement", "extendedKeyUsage=serverAuth"]),
        ];
        let unfit = [
            self_signed(&["extendedKeyUsage=clientAuth"]),
            self_signed(&["keyUsage=critical,keyCertSign,cRLSign"]),
        ];
        // Read the clock after the certificates exist: each is valid from the second openssl made it, and on a
        // busy machine that second can come after a clock read before them (NotValidYet).
        let now = UnixTime::now();
        for cert in &fit {
            assert_eq!(check_dates_and_purpose(cert, now), Ok(()));
        }
        for cert in &unfit {
            assert_eq!(
                check_dates_and_purpose(cert, now),
                invalid(CertificateError::InvalidPurpose)
            );
        }
    }
}
