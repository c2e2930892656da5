//! `tok service install|uninstall`: runs tokend as a user service instead of auto-starting it.
//!
//! - **systemd** (Linux): a socket unit and a service unit in `$XDG_CONFIG_HOME/systemd/user/`
//!   (default `~/.config/systemd/user/`). The socket unit owns the default endpoint
//!   (`%t/tokend/tokend.sock`, i.e. `$XDG_RUNTIME_DIR/tokend/tokend.sock`) and starts tokend on
//!   the first connection, passing the socket (`LISTEN_FDS`); `install` enables and starts the
//!   socket unit with `systemctl --user`.
//! - **launchd** (macOS): a LaunchAgent in `~/Library/LaunchAgents/` that keeps tokend running
//!   (launchd passes sockets through its own API, which tokend does not use, so tokend binds the
//!   endpoint itself); `install` loads it with `launchctl bootstrap`.
//! - **Task Scheduler** (Windows, `--manager windows`): a task `tokend` that starts tokend when
//!   this user logs on, with this user's interactive token and least privileges, restarted if it
//!   fails, no time limit, also on battery. The task's XML (UTF-16, as `schtasks` reads it) is
//!   kept in `%LOCALAPPDATA%\tokend\tokend-task.xml`; `install` registers it with
//!   `schtasks /Create /XML` and starts it with `schtasks /Run`. tokend runs under the console
//!   host in headless mode (`conhost.exe --headless`, Windows 10 1809 or newer), so no console
//!   window opens at logon.
//!
//! `--print` shows the files and the commands instead of acting. The service manager's program
//! can be overridden with `TOK_SYSTEMCTL` / `TOK_LAUNCHCTL` / `TOK_SCHTASKS` (for tests and
//! unusual setups).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokend_protocol::private;

use crate::autostart;
use crate::error::exit;

/// The service managers `tok service` writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Manager {
    /// systemd user units (Linux).
    Systemd,
    /// A launchd LaunchAgent (macOS).
    Launchd,
    /// A Task Scheduler logon task (Windows).
    Windows,
}

impl Manager {
    /// This platform's manager, if it has one tok supports.
    pub(crate) fn native() -> Option<Self> {
        if cfg!(target_os = "macos") {
            Some(Self::Launchd)
        } else if cfg!(target_os = "windows") {
            Some(Self::Windows)
        } else {
            Some(Self::Systemd)
        }
    }
}

/// What `install` or `uninstall` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum Action {
    /// Write the unit files and enable them (systemd: start the socket unit)
    Install {
        /// Print the files and commands instead
        #[arg(long)]
        print: bool,
        /// The service manager [default: systemd on Linux, launchd on macOS, windows (Task
        /// Scheduler) on Windows]
        #[arg(long, value_enum)]
        manager: Option<Manager>,
    },
    /// Stop and disable the service and remove its files
    Uninstall {
        /// Print the files and commands instead
        #[arg(long)]
        print: bool,
        /// The service manager [default: systemd on Linux, launchd on macOS, windows (Task
        /// Scheduler) on Windows]
        #[arg(long, value_enum)]
        manager: Option<Manager>,
    },
}

/// A failed `tok service` command: the message and the exit code.
#[derive(Debug)]
pub(crate) struct ServiceError {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl ServiceError {
    fn usage(message: String) -> Self {
        Self {
            message,
            code: exit::USAGE_OR_CONFIG,
        }
    }

    fn other(message: String) -> Self {
        Self {
            message,
            code: exit::OTHER,
        }
    }
}

/// One file the service consists of.
struct UnitFile {
    path: PathBuf,
    text: String,
    /// Written as UTF-16 with a byte-order mark (what `schtasks /XML` reads), not UTF-8.
    utf16: bool,
}

/// Everything `install` writes and runs.
struct Plan {
    files: Vec<UnitFile>,
    install_commands: Vec<Vec<OsString>>,
    uninstall_commands: Vec<Vec<OsString>>,
}

/// The systemd units' names.
const SOCKET_UNIT: &str = "tokend.socket";
const SERVICE_UNIT: &str = "tokend.service";
/// The LaunchAgent's label (also its file name).
const LAUNCHD_LABEL: &str = "dev.tokend.tokend";
/// The Task Scheduler task's name.
const TASK_NAME: &str = "tokend";

/// Runs `tok service ACTION`; notes for the user go to `notes` (stderr).
pub(crate) fn run(
    action: Action,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<(), ServiceError> {
    let (install, print, manager) = match action {
        Action::Install { print, manager } => (true, print, manager),
        Action::Uninstall { print, manager } => (false, print, manager),
    };
    let manager = manager.or_else(Manager::native).ok_or_else(|| {
        ServiceError::usage(
            "this system has no service manager tok supports; choose one with --manager \
             systemd|launchd|windows (with --print to see the files)"
                .to_owned(),
        )
    })?;
    let plan = plan(manager)?;
    let commands = if install {
        &plan.install_commands
    } else {
        &plan.uninstall_commands
    };
    if print {
        let write = |out: &mut dyn Write| -> std::io::Result<()> {
            for file in &plan.files {
                if install {
                    writeln!(out, "# {}", file.path.display())?;
                    writeln!(out, "{}", file.text)?;
                } else {
                    writeln!(out, "# remove {}", file.path.display())?;
                }
            }
            for command in commands {
                writeln!(out, "{}", shown_command(command))?;
            }
            Ok(())
        };
        return write(out).map_err(|err| ServiceError::other(format!("cannot print: {err}")));
    }
    if install {
        for file in &plan.files {
            write_private_file(&file.path, &file.bytes())?;
            let _ = writeln!(notes, "tok: wrote {}", file.path.display());
        }
        run_commands(commands, notes)?;
    } else {
        // Stop the service first, then remove what it was made of.
        run_commands(commands, notes)?;
        for file in &plan.files {
            match std::fs::remove_file(&file.path) {
                Ok(()) => {
                    let _ = writeln!(notes, "tok: removed {}", file.path.display());
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(ServiceError::other(format!(
                        "cannot remove {}: {err}",
                        file.path.display()
                    )));
                }
            }
        }
        match manager {
            Manager::Systemd => run_commands(&[systemctl(&["daemon-reload"])], notes)?,
            Manager::Windows => {
                let _ = writeln!(
                    notes,
                    "tok: a tokend the task started keeps running until `tok stop` or logoff"
                );
            }
            Manager::Launchd => {}
        }
    }
    Ok(())
}

impl UnitFile {
    fn bytes(&self) -> Vec<u8> {
        if self.utf16 {
            // The byte-order mark, then UTF-16LE; line ends as Windows writes them.
            let text = self.text.replace('\n', "\r\n");
            [0xFF, 0xFE]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect()
        } else {
            self.text.clone().into_bytes()
        }
    }
}

fn plan(manager: Manager) -> Result<Plan, ServiceError> {
    let tokend = tokend_path()?;
    let config = std::env::var_os("TOKEND_CONFIG")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from);
    if let Some(config) = &config
        && !config.is_absolute()
    {
        return Err(ServiceError::usage(format!(
            "TOKEND_CONFIG ({}) is a relative path; the service would not find it: make it \
             absolute",
            config.display()
        )));
    }
    match manager {
        Manager::Systemd => {
            let dir = config_home()?.join("systemd").join("user");
            Ok(Plan {
                files: vec![
                    UnitFile {
                        path: dir.join(SOCKET_UNIT),
                        text: systemd_socket_unit(),
                        utf16: false,
                    },
                    UnitFile {
                        path: dir.join(SERVICE_UNIT),
                        text: systemd_service_unit(&tokend, config.as_deref())?,
                        utf16: false,
                    },
                ],
                install_commands: vec![
                    systemctl(&["daemon-reload"]),
                    systemctl(&["enable", "--now", SOCKET_UNIT]),
                ],
                uninstall_commands: vec![systemctl(&[
                    "disable",
                    "--now",
                    SOCKET_UNIT,
                    SERVICE_UNIT,
                ])],
            })
        }
        Manager::Launchd => {
            let home = home()?;
            let path = home
                .join("Library")
                .join("LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist"));
            let uid = uid();
            Ok(Plan {
                files: vec![UnitFile {
                    text: launchd_plist(&tokend, config.as_deref())?,
                    path: path.clone(),
                    utf16: false,
                }],
                install_commands: vec![launchctl(vec![
                    "bootstrap".into(),
                    format!("gui/{uid}").into(),
                    path.into_os_string(),
                ])],
                uninstall_commands: vec![launchctl(vec![
                    "bootout".into(),
                    format!("gui/{uid}/{LAUNCHD_LABEL}").into(),
                ])],
            })
        }
        Manager::Windows => {
            let path = local_app_data()?.join("tokend").join("tokend-task.xml");
            Ok(Plan {
                files: vec![UnitFile {
                    text: task_xml(&tokend, config.as_deref(), &task_user())?,
                    path: path.clone(),
                    utf16: true,
                }],
                install_commands: vec![
                    schtasks(vec![
                        "/Create".into(),
                        "/TN".into(),
                        TASK_NAME.into(),
                        "/XML".into(),
                        path.into_os_string(),
                        "/F".into(),
                    ]),
                    schtasks(vec!["/Run".into(), "/TN".into(), TASK_NAME.into()]),
                ],
                uninstall_commands: vec![schtasks(vec![
                    "/Delete".into(),
                    "/TN".into(),
                    TASK_NAME.into(),
                    "/F".into(),
                ])],
            })
        }
    }
}

/// The socket and service units, with no config (`tokend` finds its default one).
pub(crate) fn systemd_user_units(
    tokend: &Path,
) -> Result<Vec<(&'static str, String)>, ServiceError> {
    Ok(vec![
        (SOCKET_UNIT, systemd_socket_unit()),
        (SERVICE_UNIT, systemd_service_unit(tokend, None)?),
    ])
}

fn systemd_socket_unit() -> String {
    "\
[Unit]
Description=tokend socket: access tokens for programs and scripts (tok, tokend-client)

[Socket]
# The default endpoint of tok and tokend-client ($XDG_RUNTIME_DIR/tokend/tokend.sock), in a
# directory only this user can enter.
ListenStream=%t/tokend/tokend.sock
DirectoryMode=0700
SocketMode=0600
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"
    .to_owned()
}

fn systemd_service_unit(tokend: &Path, config: Option<&Path>) -> Result<String, ServiceError> {
    let mut exec = systemd_quote(tokend)?;
    if let Some(config) = config {
        exec.push_str(" --config ");
        exec.push_str(&systemd_quote(config)?);
    }
    let mut text = String::new();
    let _ = write!(
        text,
        "\
[Unit]
Description=tokend: keeps access tokens fresh for tok and tokend-client
Requires={SOCKET_UNIT}
After={SOCKET_UNIT}

[Service]
Type=simple
# The listening socket comes from {SOCKET_UNIT} (LISTEN_FDS).
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
UMask=0077
NoNewPrivileges=yes

[Install]
Also={SOCKET_UNIT}
"
    );
    Ok(text)
}

fn launchd_plist(tokend: &Path, config: Option<&Path>) -> Result<String, ServiceError> {
    let mut arguments = vec![xml_text(tokend)?];
    if let Some(config) = config {
        arguments.push("--config".to_owned());
        arguments.push(xml_text(config)?);
    }
    let arguments: String = arguments
        .iter()
        .map(|arg| format!("        <string>{arg}</string>\n"))
        .collect();
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{arguments}    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>Umask</key>
    <integer>63</integer>
</dict>
</plist>
"#
    ))
}

/// The Task Scheduler task: at this user's logon, run tokend (under the headless console host,
/// so no window opens) with this user's interactive token and least privileges; one instance;
/// no time limit; also on battery; restarted up to 3 times a minute apart if it fails.
fn task_xml(tokend: &Path, config: Option<&Path>, user: &str) -> Result<String, ServiceError> {
    let mut arguments = format!("--headless {}", windows_quote(tokend)?);
    if let Some(config) = config {
        arguments.push_str(" --config ");
        arguments.push_str(&windows_quote(config)?);
    }
    let user = xml_escape(user);
    let arguments = xml_escape(&arguments);
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>tokend: keeps access tokens fresh for tok and tokend-client</Description>
    <URI>\{TASK_NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>{user}</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>{user}</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>3</Count>
    </RestartOnFailure>
    <Priority>5</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>conhost.exe</Command>
      <Arguments>{arguments}</Arguments>
    </Exec>
  </Actions>
</Task>
"#
    ))
}

/// A path as one word of a Windows command line (quoted when it has spaces).
fn windows_quote(path: &Path) -> Result<String, ServiceError> {
    let text = path.to_str().ok_or_else(|| not_utf8(path))?;
    if text.contains(['"', '\n', '\r']) {
        return Err(ServiceError::usage(format!(
            "{} contains a quote or a line break, which a task's command line cannot hold \
             safely; install tokend under a plainer path",
            path.display()
        )));
    }
    Ok(if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text.to_owned()
    })
}

/// Who the task runs as and whose logon starts it: this user's SID on Windows; elsewhere (for
/// `--print`) `%USERDOMAIN%\%USERNAME%` as the environment says.
fn task_user() -> String {
    #[cfg(windows)]
    if let Ok(sid) = tokend_protocol::win32::current_user_sid() {
        return sid;
    }
    let name = std::env::var("USERNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "USER".to_owned());
    match std::env::var("USERDOMAIN") {
        Ok(domain) if !domain.is_empty() => format!("{domain}\\{name}"),
        _ => name,
    }
}

/// A path as one systemd `ExecStart` word: quoted when it has spaces; `%` and `$` escaped so
/// systemd does not expand them.
fn systemd_quote(path: &Path) -> Result<String, ServiceError> {
    let text = path.to_str().ok_or_else(|| not_utf8(path))?;
    if text.contains(['"', '\\', '\n']) {
        return Err(ServiceError::usage(format!(
            "{} contains a quote, backslash or newline, which a unit file cannot hold safely; \
             install tokend under a plainer path",
            path.display()
        )));
    }
    let escaped = text.replace('%', "%%").replace('$', "$$");
    Ok(if escaped.contains(char::is_whitespace) {
        format!("\"{escaped}\"")
    } else {
        escaped
    })
}

fn xml_text(path: &Path) -> Result<String, ServiceError> {
    let text = path.to_str().ok_or_else(|| not_utf8(path))?;
    Ok(xml_escape(text))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn not_utf8(path: &Path) -> ServiceError {
    ServiceError::usage(format!(
        "{} is not valid UTF-8, which a unit file cannot hold; install tokend under a plainer \
         path",
        path.display()
    ))
}

/// The absolute path of the `tokend` that auto-start would run.
fn tokend_path() -> Result<PathBuf, ServiceError> {
    let program = autostart::daemon_program(None);
    let found = if program.components().count() > 1 {
        Some(program.clone())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(&program))
                .find(|candidate| candidate.is_file())
        })
    };
    let found = found.filter(|path| path.is_file()).ok_or_else(|| {
        ServiceError::usage(format!(
            "cannot find the tokend binary ({}); install it (`cargo install --path daemon`) or \
             set {}=/path/to/tokend",
            program.display(),
            autostart::BIN_ENV
        ))
    })?;
    std::path::absolute(&found).map_err(|err| {
        ServiceError::other(format!("cannot make {} absolute: {err}", found.display()))
    })
}

fn home() -> Result<PathBuf, ServiceError> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
        .ok_or_else(|| {
            ServiceError::usage(
                "HOME is not set to an absolute path; set it to your home directory".to_owned(),
            )
        })
}

fn local_app_data() -> Result<PathBuf, ServiceError> {
    std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .ok_or_else(|| {
            ServiceError::usage(
                "LOCALAPPDATA is not set to an absolute path; set it to your local application \
                 data folder (C:\\Users\\NAME\\AppData\\Local)"
                    .to_owned(),
            )
        })
}

fn config_home() -> Result<PathBuf, ServiceError> {
    match std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
    {
        Some(dir) => Ok(dir),
        None => Ok(home()?.join(".config")),
    }
}

#[cfg(unix)]
fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[cfg(not(unix))]
fn uid() -> u32 {
    0
}

fn systemctl(args: &[&str]) -> Vec<OsString> {
    let program = std::env::var_os("TOK_SYSTEMCTL")
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "systemctl".into());
    let mut command = vec![program, "--user".into()];
    command.extend(args.iter().map(OsString::from));
    command
}

fn launchctl(args: Vec<OsString>) -> Vec<OsString> {
    let program = std::env::var_os("TOK_LAUNCHCTL")
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "launchctl".into());
    let mut command = vec![program];
    command.extend(args);
    command
}

fn schtasks(args: Vec<OsString>) -> Vec<OsString> {
    let program = std::env::var_os("TOK_SCHTASKS")
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "schtasks".into());
    let mut command = vec![program];
    command.extend(args);
    command
}

fn shown_command(command: &[OsString]) -> String {
    command
        .iter()
        .map(|word| word.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_commands(commands: &[Vec<OsString>], notes: &mut dyn Write) -> Result<(), ServiceError> {
    for command in commands {
        let shown = shown_command(command);
        let (program, args) = command.split_first().expect("a program");
        let status = Command::new(program).args(args).status().map_err(|err| {
            ServiceError::other(format!(
                "cannot run `{shown}`: {err}; the files are in place, run it yourself once the \
                 service manager is available"
            ))
        })?;
        if !status.success() {
            return Err(ServiceError::other(format!(
                "`{shown}` failed ({status}); see its message above, fix the cause and run it \
                 again"
            )));
        }
        let _ = writeln!(notes, "tok: ran `{shown}`");
    }
    Ok(())
}

/// Writes `text` to `path` (mode 0600, parents 0700 when created), replacing it atomically.
fn write_private_file(path: &Path, text: &[u8]) -> Result<(), ServiceError> {
    let fail = |action: &str, target: &Path, err: std::io::Error| {
        ServiceError::other(format!("cannot {action} {}: {err}", target.display()))
    };
    let dir = path.parent().expect("unit files live in a directory");
    private::create_dir(dir).map_err(|err| fail("create", dir, err))?;
    private::write_atomic(path, text).map_err(|err| fail("write", path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_words_are_quoted_and_escaped() {
        assert_eq!(
            systemd_quote(Path::new("/usr/bin/tokend")).unwrap(),
            "/usr/bin/tokend"
        );
        assert_eq!(
            systemd_quote(Path::new("/home/a b/100%/$x/tokend")).unwrap(),
            "\"/home/a b/100%%/$$x/tokend\""
        );
        assert!(systemd_quote(Path::new("/x\"y")).is_err());
        assert!(systemd_quote(Path::new("/x\ny")).is_err());
    }

    #[test]
    fn service_unit_runs_tokend_with_the_config() {
        let unit =
            systemd_service_unit(Path::new("/opt/tokend"), Some(Path::new("/etc/t.toml"))).unwrap();
        assert!(
            unit.contains("\nExecStart=/opt/tokend --config /etc/t.toml\n"),
            "{unit}"
        );
        assert!(unit.contains("Requires=tokend.socket"));
        let socket = systemd_socket_unit();
        assert!(socket.contains("ListenStream=%t/tokend/tokend.sock\n"));
        assert!(socket.contains("DirectoryMode=0700\n"));
    }

    #[test]
    fn launchd_plist_escapes_paths() {
        let plist = launchd_plist(Path::new("/Apps/R&D/<tokend>"), None).unwrap();
        assert!(plist.contains("<string>/Apps/R&amp;D/&lt;tokend&gt;</string>"));
        assert!(plist.contains("<string>dev.tokend.tokend</string>"));
    }

    /// The agent as launchd reads it: a property list whose keys have launchd's types.
    #[test]
    fn launchd_plist_is_a_valid_property_list_with_launchds_keys() {
        let text = launchd_plist(
            Path::new("/Users/a b/R&D/bin/tokend"),
            Some(Path::new("/Users/a b/.config/tokend/config.toml")),
        )
        .unwrap();
        let value = plist::Value::from_reader_xml(text.as_bytes()).expect("a valid plist");
        let agent = value.as_dictionary().expect("a dictionary at the top");
        let keys: Vec<&str> = agent.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "Label",
                "ProgramArguments",
                "RunAtLoad",
                "KeepAlive",
                "Umask"
            ]
        );
        assert_eq!(
            agent["Label"].as_string(),
            Some(LAUNCHD_LABEL),
            "the label names the file"
        );
        let arguments: Vec<&str> = agent["ProgramArguments"]
            .as_array()
            .expect("ProgramArguments is an array")
            .iter()
            .map(|arg| arg.as_string().expect("each argument is a string"))
            .collect();
        assert_eq!(
            arguments,
            [
                "/Users/a b/R&D/bin/tokend",
                "--config",
                "/Users/a b/.config/tokend/config.toml"
            ]
        );
        assert_eq!(agent["RunAtLoad"].as_boolean(), Some(true));
        let keep_alive = agent["KeepAlive"].as_dictionary().expect("KeepAlive dict");
        assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
        // 63 = 0o077: files tokend creates are private.
        assert_eq!(agent["Umask"].as_signed_integer(), Some(0o077));
    }

    /// The task as Task Scheduler reads it: well-formed XML in the task namespace, a logon
    /// trigger and a principal for this user, and the action running tokend headless.
    #[test]
    fn the_task_xml_is_well_formed_with_a_logon_trigger_and_the_action() {
        let text = task_xml(
            Path::new(r"C:\Program Files\tokend\tokend.exe"),
            Some(Path::new(r"C:\Users\a&b\config.toml")),
            "S-1-5-21-1-2-3-1001",
        )
        .unwrap();
        let xml = roxmltree::Document::parse(&text).expect("well-formed XML");
        let task = xml.root_element();
        assert_eq!(task.tag_name().name(), "Task");
        assert_eq!(
            task.tag_name().namespace(),
            Some("http://schemas.microsoft.com/windows/2004/02/mit/task")
        );
        let text_of = |path: &[&str]| -> String {
            let mut node = task;
            for name in path {
                node = node
                    .children()
                    .find(|child| child.has_tag_name(*name))
                    .unwrap_or_else(|| panic!("no <{name}> in {path:?}"));
            }
            node.text().unwrap_or_default().to_owned()
        };
        assert_eq!(
            text_of(&["Triggers", "LogonTrigger", "UserId"]),
            "S-1-5-21-1-2-3-1001"
        );
        assert_eq!(
            text_of(&["Principals", "Principal", "LogonType"]),
            "InteractiveToken"
        );
        assert_eq!(
            text_of(&["Principals", "Principal", "RunLevel"]),
            "LeastPrivilege"
        );
        assert_eq!(text_of(&["Settings", "ExecutionTimeLimit"]), "PT0S");
        assert_eq!(
            text_of(&["Settings", "DisallowStartIfOnBatteries"]),
            "false"
        );
        assert_eq!(text_of(&["Actions", "Exec", "Command"]), "conhost.exe");
        assert_eq!(
            text_of(&["Actions", "Exec", "Arguments"]),
            r#"--headless "C:\Program Files\tokend\tokend.exe" --config C:\Users\a&b\config.toml"#
        );
        assert!(task_xml(Path::new("C:\\a\"b"), None, "S-1").is_err());
    }

    #[test]
    fn the_task_file_is_utf16_with_a_byte_order_mark() {
        let file = UnitFile {
            path: PathBuf::from("t.xml"),
            text: "<a>é</a>\n".to_owned(),
            utf16: true,
        };
        let bytes = file.bytes();
        assert_eq!(&bytes[..2], [0xFF, 0xFE]);
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        assert_eq!(String::from_utf16(&units).unwrap(), "<a>é</a>\r\n");
    }
}
