//! `hub-api init`: a hub's identity made once, for every replica to share.
//!
//! Replicas behind one load balancer must be one hub to their clients: the same CA, a serving
//! certificate naming the load balancer, and the same ServiceAccount signing key, so that a
//! kubeconfig, a client certificate or a token issued through one replica is valid on all.
//! `init` writes all three into a PKI directory, with the issuer named in ServiceAccount
//! tokens; each replica is then started with `--pki-dir` pointing at a copy of it (or a
//! shared read-only mount).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::pki::Pki;

#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// The directory to create the identity in (kept if it already holds one).
    #[arg(long)]
    pub pki_dir: PathBuf,
    /// Names and addresses the serving certificate must carry besides localhost: the load
    /// balancer's, and each replica's own (repeatable).
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// The `iss` of the ServiceAccount tokens every replica signs and accepts (default:
    /// `https://<the first --tls-san>:6443`, else `https://localhost:6443`). Kept if the
    /// directory already records one.
    #[arg(long)]
    pub service_account_issuer: Option<String>,
}

pub fn run(opts: InitOptions) -> anyhow::Result<()> {
    let pki = Pki::load_or_create_in(&opts.pki_dir, &opts.tls_sans).context("preparing certificates")?;
    let key = crate::auth::serviceaccount::ensure_key_file(&opts.pki_dir)
        .context("preparing the ServiceAccount signing key")?;
    let wanted = opts.service_account_issuer.clone().unwrap_or_else(|| {
        let host = opts.tls_sans.first().map_or("localhost", String::as_str);
        if host.contains(':') {
            format!("https://[{host}]:6443")
        } else {
            format!("https://{host}:6443")
        }
    });
    let issuer = crate::auth::serviceaccount::ensure_issuer_file(&opts.pki_dir, &wanted)
        .context("recording the ServiceAccount issuer")?;
    println!(
        "{} the hub's CA in {}",
        if pki.ca_created { "created" } else { "kept" },
        pki.ca_cert_path().display()
    );
    println!("serving certificate for localhost {}", opts.tls_sans.join(" "));
    println!("ServiceAccount signing key in {}", key.display());
    if issuer == wanted {
        println!("ServiceAccount issuer {issuer}");
    } else {
        println!("kept the ServiceAccount issuer {issuer}");
    }
    println!(
        "start every replica with --pki-dir {} (or a copy of it)",
        opts.pki_dir.display()
    );
    Ok(())
}
