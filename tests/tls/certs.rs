//! Throwaway certificates, made at run time with rcgen: a CA, server certificates
//! for 127.0.0.1 it signs (in date, expired, not yet valid), client certificates,
//! all written as PEM files into a temporary directory.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

/// A certificate authority that signs the others.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    /// Its certificate as a PEM file.
    pub pem: PathBuf,
}

/// A signed certificate and its key, as PEM files.
#[derive(Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's DER, to recognise it in a handshake.
    pub der: Vec<u8>,
}

/// When an issued certificate is valid.
#[derive(Clone, Copy)]
pub enum Dates {
    Current,
    Expired,
    NotYetValid,
}

/// Who an issued certificate is for.
#[derive(Clone, Copy)]
pub enum Role {
    Server,
    Client,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("RustKV test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        fs::write(&pem, cert.pem()).unwrap();
        Ca { cert, key, pem }
    }

    /// A certificate for 127.0.0.1 and localhost, written as `{name}.pem` and
    /// `{name}-key.pem` in `dir`.
    pub fn issue(&self, dir: &Path, name: &str, role: Role, dates: Dates) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![match role {
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        (params.not_before, params.not_after) = match dates {
            Dates::Current => (date_time_ymd(2000, 1, 1), date_time_ymd(4000, 1, 1)),
            Dates::Expired => (date_time_ymd(2000, 1, 1), date_time_ymd(2001, 1, 1)),
            Dates::NotYetValid => (date_time_ymd(3000, 1, 1), date_time_ymd(4000, 1, 1)),
        };
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            der: cert.der().to_vec(),
        };
        fs::write(&issued.cert, cert.pem()).unwrap();
        fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

/// A `[tls]` section serving `server`, requiring client certificates signed by
/// `client_ca` if given.
pub fn tls_section(server: &Issued, client_ca: Option<&Path>) -> String {
    let mut section = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    if let Some(ca) = client_ca {
        section += &format!("client_ca = {:?}\n", ca.display().to_string());
    }
    section
}
