//! `tok`: see [`tokend_client::cli`].

fn main() -> std::process::ExitCode {
    let code = tokend_client::cli::run(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::ExitCode::from(code)
}
