//! A reqwest client whose every request carries a tokend provider's header, retried once with
//! a fresh token after a 401.
//!
//! ```sh
//! cargo run -p tokend-client --features reqwest --example reqwest_middleware -- \
//!     crm https://crm.example.com/crmapi/rest/v2/contacts
//! ```
//!
//! It prints the status line on stderr and the body on stdout. The tokens come from the
//! running tokend (started on first use, as `tok` does).

// An example's output is the point.
#![allow(clippy::print_stdout)]

use tokend_client::AsyncClient;
use tokend_client::middleware::TokendAuth;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(provider), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: reqwest_middleware PROVIDER URL");
        std::process::exit(2);
    };
    // One AsyncClient for the whole program: it is cheap to clone and shared by every task.
    let tokens = AsyncClient::new();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TokendAuth::new(tokens, provider))
        .build();
    let response = http.get(&url).send().await?;
    eprintln!("{}", response.status());
    println!("{}", response.text().await?);
    Ok(())
}
