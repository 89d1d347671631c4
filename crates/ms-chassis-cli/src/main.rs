//! `ms-chassis`: the command-line companion of the ms-chassis library.
//!
//! It makes and uses the Fernet key behind `enc_` config values (PyMS-compatible: the same
//! key file and tokens work with `pyms` and Python's `cryptography`), and checks a config
//! exactly as the service would load it, checks and bundles OpenAPI specs, and makes new
//! services from the template embedded in it (`new`). The binary stays thin: keys, decryption, loading,
//! validation and redaction all live in `ms_chassis::config`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod new;
mod openapi;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ms_chassis::config::{ConfigLoader, KEY_FILE_VAR, SecretKey, key_file_from_env};

/// Tools for services built on ms-chassis: keys and encrypted config values, config checks.
#[derive(Debug, Parser)]
#[command(name = "ms-chassis", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a new service: a crate on ms-chassis with its config profiles, tests, README,
    /// Dockerfile, docker-compose.yaml (with Prometheus and Jaeger) and a Helm chart.
    New(new::NewArgs),
    /// Write a new key file for `enc_` config values: the urlsafe base64 of 32 random bytes
    /// (as in PyMS), with mode 0600.
    Keygen {
        /// Where to write the key.
        #[arg(long, value_name = "PATH", default_value = "key.key")]
        out: PathBuf,
        /// Replace an existing key file. Values encrypted with the old key can then no longer
        /// be decrypted.
        #[arg(long)]
        force: bool,
    },
    /// Encrypt a value for an `enc_` config key. Prints the token alone, ready to paste into
    /// YAML.
    Encrypt {
        /// The value. When absent, it is read from stdin (one trailing newline is dropped),
        /// which keeps it out of the shell history.
        plaintext: Option<String>,
        #[command(flatten)]
        key: KeyFileArg,
    },
    /// Decrypt the token of an `enc_` config key. Prints the value.
    Decrypt {
        /// The token. When absent, it is read from stdin.
        token: Option<String>,
        #[command(flatten)]
        key: KeyFileArg,
    },
    /// Work with the service's configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check and bundle hand-written OpenAPI specs (3.0.x and 3.1.x).
    Openapi {
        #[command(subcommand)]
        command: openapi::OpenapiCommand,
    },
}

#[derive(Debug, Args)]
struct KeyFileArg {
    /// The key file [default: $MS_KEY_FILE, else ./key.key].
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

impl KeyFileArg {
    fn path(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(key_file_from_env)
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load the configuration exactly as the service would (MS_CONFIG_FILE, MS_PROFILE,
    /// MS__* overrides, MS_KEY_FILE), and report every problem with its location. Exits 1
    /// if there is any.
    Check {
        /// The config file, or a directory holding config.yaml [default: $MS_CONFIG_FILE,
        /// else ./config.yaml].
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The profile: config.PROFILE.yaml is layered over the file [default:
        /// $MS_PROFILE].
        #[arg(long)]
        profile: Option<String>,
        /// Also print the effective config, with secrets redacted and the layer each value
        /// came from.
        #[arg(long)]
        print: bool,
        /// The format of --print.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
        #[command(flatten)]
        key: KeyFileArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// YAML, each value followed by a comment naming its layer.
    Yaml,
    /// `{"config": …, "origins": {"dotted.path": "layer"}}`.
    Json,
}

/// A failure to report: the message never holds a key, token or plaintext.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new::run(args),
        Command::Keygen { out, force } => keygen(&out, force),
        Command::Encrypt { plaintext, key } => encrypt(plaintext, &key.path()),
        Command::Decrypt { token, key } => decrypt(token, &key.path()),
        Command::Config {
            command:
                ConfigCommand::Check {
                    file,
                    profile,
                    print,
                    format,
                    key,
                },
        } => check(file, profile, print.then_some(format), key.key_file),
        Command::Openapi { command } => openapi::run(command),
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("ms-chassis: {message}");
            ExitCode::FAILURE
        }
    }
}

fn keygen(out: &Path, force: bool) -> Result<ExitCode, Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure(format!(
            "{} already exists; not overwriting it, since values encrypted with it could no \
             longer be decrypted. Pass --force to replace it.",
            out.display()
        )),
        _ => Failure(format!("cannot write {}: {e}", out.display())),
    })?;
    // `mode` applies only to a new file: an overwritten one gets it here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(SecretKey::generate().as_bytes())?;
    file.sync_all()?;
    eprintln!(
        "wrote a new key to {} (mode 0600). Keep it out of version control; services find it \
         through {KEY_FILE_VAR}.",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The argument, else stdin without one trailing newline.
fn argument_or_stdin(arg: Option<String>, what: &str) -> Result<Vec<u8>, Failure> {
    if let Some(arg) = arg {
        return Ok(arg.into_bytes());
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the {what} from stdin (end it with Ctrl-D)");
    }
    let mut input = Vec::new();
    stdin.read_to_end(&mut input)?;
    if input.ends_with(b"\n") {
        input.pop();
        if input.ends_with(b"\r") {
            input.pop();
        }
    }
    Ok(input)
}

fn encrypt(plaintext: Option<String>, key_file: &Path) -> Result<ExitCode, Failure> {
    let key = SecretKey::from_file(key_file)?;
    let plaintext = argument_or_stdin(plaintext, "value to encrypt")?;
    println!("{}", key.encrypt(&plaintext));
    Ok(ExitCode::SUCCESS)
}

fn decrypt(token: Option<String>, key_file: &Path) -> Result<ExitCode, Failure> {
    let key = SecretKey::from_file(key_file)?;
    let token = argument_or_stdin(token, "token")?;
    let token = String::from_utf8(token).map_err(|_| Failure("the token is not text".into()))?;
    let mut plaintext = key.decrypt(&token)?;
    plaintext.push(b'\n');
    std::io::stdout().write_all(&plaintext)?;
    Ok(ExitCode::SUCCESS)
}

fn check(
    file: Option<PathBuf>,
    profile: Option<String>,
    print: Option<Format>,
    key_file: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let mut loader = ConfigLoader::from_env();
    if let Some(file) = file {
        loader = loader.file(file);
    }
    if let Some(profile) = profile {
        loader = loader.profile(profile);
    }
    if let Some(key_file) = key_file {
        loader = loader.key_file(key_file);
    }
    let config = match loader.load() {
        Ok(config) => config,
        Err(e) => {
            let n = e.diagnostics().len();
            for d in e.diagnostics() {
                eprintln!("{d}");
            }
            let s = if n == 1 { "" } else { "s" };
            eprintln!("ms-chassis: the configuration has {n} problem{s}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match print {
        Some(Format::Yaml) => print!("{}", config.annotated_yaml()),
        Some(Format::Json) => {
            let doc = serde_json::json!({
                "config": config.redacted(),
                "origins": config.leaf_origins(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        None => {}
    }
    eprintln!("ms-chassis: the configuration is valid");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
