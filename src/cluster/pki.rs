//! The cluster's PKI, generated in Rust: a CA, the API server's serving certificate, and client
//! certificates whose CN is the user and whose O entries are the groups (as kubeadm issues them).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not generate a certificate for {what}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("could not read the cluster CA: {0}")]
    LoadCa(rcgen::Error),
    #[error("could not parse a certificate: {0}")]
    Parse(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster CA, able to issue leaf certificates.
pub struct Ca {
    pub pair: CertPair,
    issuer: Issuer<'static, KeyPair>,
}

fn validity(params: &mut CertificateParams, years: i32) {
    let now = jiff::Zoned::now();
    let (y, m, d) = (now.year() as i32, now.month() as u8, now.day() as u8);
    // A day back tolerates clocks that differ a little between host and nodes.
    params.not_before = rcgen::date_time_ymd(y, m, d.saturating_sub(1).max(1));
    params.not_after = rcgen::date_time_ymd(y + years, m, d.min(28));
}

impl Ca {
    /// A fresh CA for cluster `cluster`, valid for ten years like kubeadm's.
    pub fn generate(cluster: &str) -> Result<Self> {
        let what = || "the cluster CA".to_string();
        let key = KeyPair::generate().map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("kubernetes ({cluster})"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 10);
        let cert = params.self_signed(&key).map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        let pair = CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            pair,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA stored in a node (`ca.crt`, `ca.key`).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(Error::LoadCa)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(Error::LoadCa)?;
        Ok(Ca {
            pair: CertPair {
                cert_pem: cert_pem.to_string(),
                key_pem: key_pem.to_string(),
            },
            issuer,
        })
    }

    /// A client certificate: `user` becomes the CN, each group an O entry.
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertPair> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &format!("user {user}"))
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn issue_serving(&self, cn: &str, dns: &[String], ips: &[IpAddr]) -> Result<CertPair> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = dns
            .iter()
            .filter_map(|d| d.clone().try_into().ok().map(SanType::DnsName))
            .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, cn)
    }

    fn issue(&self, mut params: CertificateParams, what: &str) -> Result<CertPair> {
        let err = |source| Error::Generate {
            what: what.to_string(),
            source,
        };
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        validity(&mut params, 1);
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The user (CN) and groups (O) a client certificate names.
pub fn subject_of(cert_der: &[u8]) -> Result<(String, Vec<String>)> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| Error::Parse(e.to_string()))?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default()
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Ok((cn, orgs))
}

/// The IP addresses a serving certificate covers.
pub fn ip_sans_of(cert_pem: &str) -> Result<Vec<IpAddr>> {
    let der = pem_to_der(cert_pem)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| Error::Parse(e.to_string()))?;
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::IPAddress(b) = name {
                match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                }
            }
        }
    }
    Ok(ips)
}

/// The DER bytes of the first PEM block in `pem`.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| Error::Parse(e.to_string()))?;
    Ok(p.contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_certificate_names_user_and_group() {
        let ca = Ca::generate("t").unwrap();
        let admin = ca
            .issue_client("kubernetes-admin", &["system:masters"])
            .unwrap();
        let der = pem_to_der(&admin.cert_pem).unwrap();
        let (cn, orgs) = subject_of(&der).unwrap();
        assert_eq!(cn, "kubernetes-admin");
        assert_eq!(orgs, ["system:masters"]);
    }

    #[test]
    fn serving_certificate_covers_loopback_and_node_ip() {
        let ca = Ca::generate("t").unwrap();
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "172.18.0.2".parse().unwrap()];
        let s = ca
            .issue_serving("kube-apiserver", &["kubernetes".into()], &ips)
            .unwrap();
        assert_eq!(ip_sans_of(&s.cert_pem).unwrap(), ips);
    }

    #[test]
    fn a_loaded_ca_issues_certificates_that_chain_to_it() {
        let ca = Ca::generate("t").unwrap();
        let again = Ca::load(&ca.pair.cert_pem, &ca.pair.key_pem).unwrap();
        let leaf = again
            .issue_client("system:node:n1", &["system:nodes"])
            .unwrap();
        let leaf_der = pem_to_der(&leaf.cert_pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        let ca_der = pem_to_der(&ca.pair.cert_pem).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(leaf.issuer(), ca_cert.subject());
        leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
    }
}
