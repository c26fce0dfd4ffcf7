//! The PKI directory: what is there is loaded, what is missing or no longer fits is created
//! and written.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use faros_kubeconfig::{write_atomic, write_private};
use rcgen::KeyPair;

use super::ca::{San, check_ca, create_ca, requested_sans};
use super::der::pem_to_cert_der;
use super::{CA_CERT_FILE, CA_KEY_FILE, Pki, SERVING_CERT_FILE, SERVING_KEY_FILE, SERVING_VALIDITY};

impl Pki {
    /// Loads the PKI from `dir/pki`, creating whatever is missing.
    ///
    /// First start creates `ca.crt`/`ca.key` (ECDSA P-256, CN `faros-hub-ca`,
    /// 10 years) and `serving.crt`/`serving.key` (1 year; SANs `localhost`,
    /// `127.0.0.1`, `::1` plus every entry of `sans`: IP addresses become IP
    /// SANs, everything else DNS SANs). Later starts reuse the CA; the serving
    /// certificate is re-issued when it lacks a requested SAN, expires within
    /// 30 days, does not chain to the CA or does not match its key file.
    ///
    /// A CA with only one of its two files present, or one that cannot be
    /// read, is an error rather than being silently replaced: replacing it
    /// would invalidate every kubeconfig handed out so far.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Pki> {
        Self::load_or_create_in(&dir.join("pki"), sans)
    }

    /// Like [`Pki::load_or_create`], with the PKI directory itself given: replicas of one hub
    /// share one (`--pki-dir`).
    pub fn load_or_create_in(pki_dir: &Path, sans: &[String]) -> Result<Pki> {
        let pki_dir = pki_dir.to_path_buf();
        create_private_dir(&pki_dir)?;
        let wanted = requested_sans(sans)?;

        let ca_cert_path = pki_dir.join(CA_CERT_FILE);
        let ca_key_path = pki_dir.join(CA_KEY_FILE);
        let (ca_cert_pem, ca_key, ca_created) = match (ca_cert_path.exists(), ca_key_path.exists()) {
            (true, true) => {
                let cert_pem = read_to_string(&ca_cert_path)?;
                let key_pem = read_to_string(&ca_key_path)?;
                tighten_key_permissions(&ca_key_path)?;
                let key = KeyPair::from_pem(&key_pem)
                    .map_err(|e| anyhow!("parsing CA key {}: {e}", ca_key_path.display()))?;
                (cert_pem, key, false)
            }
            (false, false) => {
                let (cert_pem, key) = create_ca()?;
                // The key goes first: a crash in between leaves a key without
                // a certificate, which is reported instead of silently
                // replaced.
                write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
                write_atomic(&ca_cert_path, cert_pem.as_bytes(), 0o644)?;
                (cert_pem, key, true)
            }
            (cert, _) => {
                let (present, missing) = if cert {
                    (&ca_cert_path, &ca_key_path)
                } else {
                    (&ca_key_path, &ca_cert_path)
                };
                bail!(
                    "{} exists but {} is missing; restore it, or remove {} to create a new CA \
                     (which invalidates every issued kubeconfig)",
                    present.display(),
                    missing.display(),
                    pki_dir.display()
                );
            }
        };

        let ca_cert_der = pem_to_cert_der(&ca_cert_pem)
            .with_context(|| format!("reading CA certificate {}", ca_cert_path.display()))?;
        let ca_not_after = check_ca(&ca_cert_der, &ca_key)
            .with_context(|| format!("checking CA certificate {}", ca_cert_path.display()))?;

        let mut pki = Pki {
            ca_cert_pem,
            ca_key,
            serving_cert_pem: String::new(),
            serving_key_pem: String::new(),
            pki_dir,
            ca_created,
            serving_issued: false,
            ca_cert_der,
            ca_not_after,
        };
        pki.ensure_serving_cert(&wanted, SERVING_VALIDITY)?;
        Ok(pki)
    }

    /// Keeps the serving certificate on disk if it still fits, or issues a
    /// new one valid for `validity`.
    pub(super) fn ensure_serving_cert(&mut self, wanted: &[San], validity: Duration) -> Result<()> {
        let cert_path = self.pki_dir.join(SERVING_CERT_FILE);
        let key_path = self.pki_dir.join(SERVING_KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = read_to_string(&cert_path)?;
            let key_pem = read_to_string(&key_path)?;
            if self.serving_cert_fits(&cert_pem, &key_pem, wanted) {
                tighten_key_permissions(&key_path)?;
                self.serving_cert_pem = cert_pem;
                self.serving_key_pem = key_pem;
                return Ok(());
            }
        }
        let (cert_pem, key_pem) = self.issue_serving_cert(wanted, validity)?;
        write_private(&key_path, key_pem.as_bytes())?;
        write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
        self.serving_cert_pem = cert_pem;
        self.serving_key_pem = key_pem;
        self.serving_issued = true;
        Ok(())
    }
}

fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates `dir` (and missing parents) with mode `0700`; existing
/// directories are left as they are.
fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

/// Restricts an existing key file to its owner (`0600`) if it is readable
/// by anyone else.
fn tighten_key_permissions(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
    }
    Ok(())
}
