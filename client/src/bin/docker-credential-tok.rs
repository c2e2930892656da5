//! `docker-credential-tok`: Docker's credential-helper protocol answered from tokend; see
//! [`tokend_client::credential`].

fn main() -> std::process::ExitCode {
    let code = tokend_client::credential::docker_main(
        std::env::args_os(),
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    );
    std::process::ExitCode::from(code)
}
