//! Where a flag's value comes from: the command line, else an environment variable, else a
//! YAML config file, else the flag's default.
//!
//! Every flag `--some-flag` of a command gets the environment variable `<PREFIX>SOME_FLAG`
//! (clap reads it when the flag is absent), and every command gets `--config FILE`. The
//! file's keys are flag names (`secure-port: 7443`, `tls-san: [a, b]`); its values become the
//! flags' defaults before the command line is parsed, so clap's own order (flag, then
//! environment, then default) gives the precedence, for every flag of every binary, with no
//! code per flag. A key that is not a flag of the command being run is an error naming it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use serde_norway::Value;

/// The id and flag of the config file.
const CONFIG: &str = "config";

/// The command line of `T`, with an environment variable for every flag and `--config`.
pub fn command<T: CommandFactory>(env_prefix: &str) -> Command {
    let config = Arg::new(CONFIG)
        .long(CONFIG)
        .global(true)
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .display_order(10_000)
        .help("A YAML file of flag values keyed by flag name (`some-flag: value`, `a-list: [a, b]`); flags and environment variables override it");
    with_env(T::command().arg(config), env_prefix)
}

/// Parses this process's arguments into `T` (see the module), exiting with clap's message
/// on an error, as `T::parse()` does.
pub fn parse<T: CommandFactory + FromArgMatches>(env_prefix: &str) -> T {
    try_parse_from(env_prefix, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args` (the program name first) into `T`, with values from the environment and
/// from the `--config` file.
pub fn try_parse_from<T, I, S>(env_prefix: &str, args: I) -> Result<T, clap::Error>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = command::<T>(env_prefix);
    // A first, lenient pass finds the file and the subcommand it applies to; a command line
    // that does not parse even so (`--help`, a typo) is left to the real pass to report.
    if let Ok(probe) = command.clone().ignore_errors(true).try_get_matches_from(&args) {
        let (file, path) = selected(&probe);
        if let Some(file) = file {
            command = with_file(command, &path, &file)?;
        }
    }
    let matches = command.try_get_matches_from_mut(&args)?;
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// `FAROS_HUB_` and `--secure-port` make `FAROS_HUB_SECURE_PORT`.
fn env_name(prefix: &str, long: &str) -> String {
    format!("{prefix}{}", long.to_uppercase().replace('-', "_"))
}

/// Whether `arg` is a flag that takes a setting (not `--help` or `--version`).
fn is_setting(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn with_env(command: Command, prefix: &str) -> Command {
    let command = command.mut_args(|arg| match arg.get_long() {
        Some(long) if is_setting(&arg) => {
            let name = env_name(prefix, long);
            arg.env(name)
        }
        _ => arg,
    });
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| with_env(sub, prefix))
    })
}

/// The config file named (on the command line or in the environment) and the subcommands
/// chosen, outermost first.
fn selected(matches: &ArgMatches) -> (Option<PathBuf>, Vec<String>) {
    let mut file = None;
    let mut path = Vec::new();
    let mut level = Some(matches);
    while let Some(m) = level {
        if let Ok(Some(f)) = m.try_get_one::<PathBuf>(CONFIG) {
            file = Some(f.clone());
        }
        level = m.subcommand().map(|(name, sub)| {
            path.push(name.to_string());
            sub
        });
    }
    (file, path)
}

/// The command with the file's values as the defaults of the flags they name.
fn with_file(mut command: Command, path: &[String], file: &Path) -> Result<Command, clap::Error> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        command.error(
            ErrorKind::Io,
            format!("reading the config file {}: {e}", file.display()),
        )
    })?;
    let document: Value = serde_norway::from_str(&text).map_err(|e| {
        command.error(
            ErrorKind::InvalidValue,
            format!("the config file {} is not YAML: {e}", file.display()),
        )
    })?;
    let entries = match document {
        Value::Null => Default::default(),
        Value::Mapping(entries) => entries,
        _ => {
            return Err(command.error(
                ErrorKind::InvalidValue,
                format!(
                    "the config file {} must be a mapping of flag names to values",
                    file.display()
                ),
            ));
        }
    };
    for (key, value) in entries {
        let Some(key) = key.as_str().map(str::to_string) else {
            return Err(command.error(
                ErrorKind::InvalidValue,
                format!("the config file {} has a key that is not a flag name", file.display()),
            ));
        };
        let Some((depth, id, many)) = find_flag(&command, path, &key) else {
            let mut name = vec![command.get_name().to_string()];
            name.extend(path.iter().cloned());
            return Err(command.error(
                ErrorKind::UnknownArgument,
                format!(
                    "the config file {} has an unknown key {key:?}: `{}` has no flag --{key}",
                    file.display(),
                    name.join(" ")
                ),
            ));
        };
        let values = match values_of(&value) {
            Some(values) if values.len() == 1 || many => values,
            _ => {
                return Err(command.error(
                    ErrorKind::InvalidValue,
                    format!(
                        "the config file {} gives key {key:?} {}: --{key} takes {}",
                        file.display(),
                        describe(&value),
                        if many {
                            "a value or a list of values"
                        } else {
                            "one value"
                        }
                    ),
                ));
            }
        };
        command = at_depth(command, &path[..depth], &mut |c| {
            c.mut_arg(&id, |arg| arg.default_values(values.clone()).required(false))
        });
    }
    Ok(command)
}

/// The flag `--long` of the subcommand at `path` or of one of the commands above it (their
/// flags are given before the subcommand): its depth in `path`, its id, and whether it takes
/// several values.
fn find_flag(command: &Command, path: &[String], long: &str) -> Option<(usize, String, bool)> {
    let mut levels = vec![command];
    for name in path {
        levels.push(levels.last()?.find_subcommand(name)?);
    }
    levels.iter().enumerate().rev().find_map(|(depth, level)| {
        level
            .get_arguments()
            .find(|a| a.get_long() == Some(long) && a.get_id() != CONFIG && is_setting(a))
            .map(|a| {
                let many =
                    matches!(a.get_action(), ArgAction::Append) || a.get_num_args().is_some_and(|n| n.max_values() > 1);
                (depth, a.get_id().to_string(), many)
            })
    })
}

/// Applies `change` to the subcommand at `path` of `command`.
fn at_depth(command: Command, path: &[String], change: &mut dyn FnMut(Command) -> Command) -> Command {
    match path.split_first() {
        None => change(command),
        Some((name, rest)) => command.mut_subcommand(name, |sub| at_depth(sub, rest, change)),
    }
}

/// A scalar as the one value it gives a flag, a list of scalars as several.
fn values_of(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|v| vec![v]),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "no value",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        _ => "a value of another kind",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    #[command(name = "tool")]
    struct Tool {
        /// A global flag.
        #[arg(long, global = true)]
        verbose_level: Option<u8>,
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Subcommand, Debug)]
    enum Sub {
        Start(Start),
        Other {
            #[arg(long)]
            only_here: Option<String>,
        },
    }

    #[derive(clap::Args, Debug)]
    struct Start {
        #[arg(long, default_value_t = 6443)]
        secure_port: u16,
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        #[arg(long)]
        all_in_one: bool,
        #[arg(long, required = true)]
        token: String,
        /// A positional argument is no setting.
        file: Option<String>,
    }

    const PREFIX: &str = "TOOL_TEST_";

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("faros-cli-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse(args: &[&str]) -> Result<Tool, clap::Error> {
        try_parse_from::<Tool, _, _>(PREFIX, std::iter::once("tool").chain(args.iter().copied()))
    }

    fn start(tool: Tool) -> Start {
        match tool.command {
            Sub::Start(s) => s,
            Sub::Other { .. } => panic!("not start"),
        }
    }

    #[test]
    fn every_flag_has_an_environment_variable() {
        let command = command::<Tool>("TOOL_");
        let start = command.find_subcommand("start").unwrap();
        let env = |id: &str| {
            start
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("secure_port").as_deref(), Some("TOOL_SECURE_PORT"));
        assert_eq!(env("tls_sans").as_deref(), Some("TOOL_TLS_SAN"));
        assert_eq!(env("all_in_one").as_deref(), Some("TOOL_ALL_IN_ONE"));
        assert_eq!(env("file"), None);
        let root_env = command
            .get_arguments()
            .find(|a| a.get_id() == CONFIG)
            .and_then(|a| a.get_env());
        assert_eq!(
            root_env.map(|e| e.to_string_lossy().into_owned()).as_deref(),
            Some("TOOL_CONFIG")
        );
    }

    #[test]
    fn file_values_are_defaults_the_command_line_overrides() {
        let file = write(
            "values",
            "secure-port: 7443\ntls-san: [a.example, b.example]\nservers: x,y\nall-in-one: true\ntoken: from-file\nverbose-level: 2\n",
        );
        let f = file.to_str().unwrap();
        let tool = parse(&["start", "--config", f]).unwrap();
        assert_eq!(tool.verbose_level, Some(2));
        let s = start(tool);
        assert_eq!(s.secure_port, 7443);
        assert_eq!(s.tls_sans, ["a.example", "b.example"]);
        assert_eq!(s.servers, ["x", "y"]);
        assert!(s.all_in_one);
        assert_eq!(s.token, "from-file");
        // Before or after the subcommand; flags win over the file, lists are replaced whole.
        let s = start(
            parse(&[
                "--config",
                f,
                "start",
                "--secure-port",
                "1",
                "--tls-san",
                "c.example",
                "--token",
                "t",
            ])
            .unwrap(),
        );
        assert_eq!(
            (s.secure_port, s.tls_sans.as_slice(), s.token.as_str()),
            (1, &["c.example".to_string()][..], "t")
        );
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn without_a_file_defaults_and_requirements_stand() {
        let s = start(parse(&["start", "--token", "t"]).unwrap());
        assert_eq!(s.secure_port, 6443);
        assert!(!s.all_in_one);
        assert!(s.tls_sans.is_empty());
        let e = parse(&["start"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        // An empty file changes nothing.
        let file = write("empty", "");
        let s = start(parse(&["start", "--token", "t", "--config", file.to_str().unwrap()]).unwrap());
        assert_eq!(s.secure_port, 6443);
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn bad_files_are_errors_that_say_what_is_wrong() {
        let cases = [
            (
                "unknown",
                "secure-prot: 1\n",
                "unknown key \"secure-prot\": `tool start` has no flag --secure-prot",
            ),
            ("other", "only-here: x\n", "unknown key \"only-here\""),
            ("config", "config: other.yaml\n", "unknown key \"config\""),
            ("list", "secure-port: [1, 2]\n", "--secure-port takes one value"),
            ("map", "tls-san: {a: b}\n", "gives key \"tls-san\" a mapping"),
            ("notmap", "- a\n", "must be a mapping"),
            ("yaml", "a: [\n", "is not YAML"),
            ("parse", "secure-port: many\n", "many"),
        ];
        for (name, text, expected) in cases {
            let file = write(name, text);
            let e = parse(&["start", "--token", "t", "--config", file.to_str().unwrap()]).unwrap_err();
            assert!(e.to_string().contains(expected), "{name}: {e}");
            std::fs::remove_file(file).unwrap();
        }
        let e = parse(&["start", "--token", "t", "--config", "/nonexistent/faros.yaml"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("reading the config file /nonexistent/faros.yaml"),
            "{e}"
        );
    }
}
