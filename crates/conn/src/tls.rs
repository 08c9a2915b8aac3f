//! The rustls client configuration for each `sslmode`.
//!
//! rustls always verifies certificates, so the two weaker libpq behaviours need verifiers
//! of our own: [`AcceptAnyCert`] (prefer, and require without a root certificate) and
//! [`VerifyChainOnly`] (verify-ca, and require with a root certificate). Both still check
//! the handshake signatures, so the server must hold the key of the certificate it shows.
//! verify-full uses rustls' standard WebPKI verifier and is never weakened.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

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
    ChainOnly(RootCertStore),
    Full(RootCertStore),
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
        Verification::Full(roots) => builder.with_root_certificates(roots),
        Verification::ChainOnly(roots) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(VerifyChainOnly {
                    roots: Arc::new(roots),
                    provider,
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

fn load_required_roots(roots: Option<Roots>) -> Result<RootCertStore, Error> {
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

fn load_roots(roots: &Roots) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::debug!(%error, "while loading the system's root certificates");
            }
            store.add_parsable_certificates(native.certs);
            if store.is_empty() {
                tracing::debug!("no system root certificates found; using the webpki-roots set");
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        Roots::File(path) => {
            for cert in read_certificates(path, "root certificate file")? {
                store.add(cert).map_err(|e| {
                    tls_error(format!("bad certificate in \"{}\": {e}", path.display()))
                })?;
            }
        }
    }
    Ok(store)
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
