//! `ms-chassis openapi check|bundle`: a spec checked exactly as a service loads it at
//! startup (meta-schema, bundling, every schema compiled), and the bundled single document
//! written out, as PyMS's `merge-swagger` does. All the work is in `ms_chassis::openapi`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use ms_chassis::openapi::{Document, SpecError, ValidationOptions, Validator};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum OpenapiCommand {
    /// Check a spec as the service would at startup: YAML syntax, `$ref`s (across files
    /// too), the OpenAPI meta-schema, and every schema compiled. Reports each problem with
    /// its file and line; exits 1 if there is any.
    Check {
        /// The spec (YAML or JSON).
        file: PathBuf,
    },
    /// Bundle a spec split over several files into one document whose every `$ref` is
    /// local, the parts from other files hoisted into `components`.
    Bundle {
        /// The root file of the spec.
        file: PathBuf,
        /// Where to write the bundle [default: stdout].
        #[arg(short, long, value_name = "OUT")]
        out: Option<PathBuf>,
        /// The output format [default: by the extension of OUT (.json is JSON), else YAML].
        #[arg(long, value_enum)]
        format: Option<SpecFormat>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SpecFormat {
    /// YAML.
    Yaml,
    /// JSON, pretty-printed.
    Json,
}

pub(crate) fn run(command: OpenapiCommand) -> Result<ExitCode, Failure> {
    match command {
        OpenapiCommand::Check { file } => check(&file),
        OpenapiCommand::Bundle { file, out, format } => bundle(&file, out.as_deref(), format),
    }
}

fn report(e: &SpecError) -> ExitCode {
    match e {
        SpecError::Read { .. } => eprintln!("{e}"),
        SpecError::Invalid(diagnostics) => {
            for d in diagnostics {
                eprintln!("{d}");
            }
            let n = diagnostics.len();
            let s = if n == 1 { "" } else { "s" };
            eprintln!("ms-chassis: the spec has {n} problem{s}");
        }
    }
    ExitCode::FAILURE
}

fn check(file: &Path) -> Result<ExitCode, Failure> {
    let doc = match Document::load(file) {
        Ok(doc) => doc,
        Err(e) => return Ok(report(&e)),
    };
    match Validator::compile(&doc, ValidationOptions::default()) {
        Ok(v) => {
            let n = v.operations().count();
            let s = if n == 1 { "" } else { "s" };
            eprintln!(
                "ms-chassis: the spec is valid: OpenAPI {}, {n} operation{s}",
                doc.as_value()["openapi"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report(&e)),
    }
}

fn bundle(
    file: &Path,
    out: Option<&Path>,
    format: Option<SpecFormat>,
) -> Result<ExitCode, Failure> {
    let doc = match Document::load(file) {
        Ok(doc) => doc,
        Err(e) => return Ok(report(&e)),
    };
    let format = format.unwrap_or_else(|| match out.and_then(Path::extension) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => SpecFormat::Json,
        _ => SpecFormat::Yaml,
    });
    let text = match format {
        SpecFormat::Yaml => doc.to_yaml(),
        SpecFormat::Json => format!("{}\n", serde_json::to_string_pretty(doc.as_value())?),
    };
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
