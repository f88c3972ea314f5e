//! The README's commands keep working: every `tracehop` command in its
//! shell blocks names a subcommand and flags the binary has, and every
//! file of this repository it mentions exists. (Commands that need a
//! network, Docker or a cluster are not run; what they name is checked.)

use std::path::Path;
use std::process::Command;

/// The shell blocks' commands, continuation lines joined, comments cut.
fn shell_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_shell = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell = !in_shell && (line == "```sh" || line == "```bash");
            continue;
        }
        if !in_shell {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default();
        let code = if code.trim_start().starts_with('#') {
            ""
        } else {
            code
        };
        match code.trim_end().strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(code);
                if !pending.trim().is_empty() {
                    commands.push(pending.trim().to_owned());
                }
                pending.clear();
            }
        }
    }
    commands
}

/// The arguments of a `tracehop` invocation in `command`, if it is one.
fn tracehop_args(command: &str) -> Option<Vec<&str>> {
    let command = command
        .trim_start_matches("setsid ")
        .trim_end_matches('&')
        .trim();
    let rest = command
        .strip_prefix("cargo run --release -- ")
        .or_else(|| command.strip_prefix("tracehop "))?;
    Some(rest.split_whitespace().collect())
}

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tracehop"))
        .args(args)
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "tracehop {args:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_readme_command_names_real_subcommands_flags_and_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let commands = shell_commands(&readme);
    assert!(commands.len() > 10, "found only {commands:?}");
    let mut checked = 0;
    for command in &commands {
        if let Some(args) = tracehop_args(command) {
            let subcommand = args[0];
            let text = help(&[subcommand]);
            for flag in args.iter().filter(|a| a.starts_with("--")) {
                let flag = flag.split('=').next().unwrap_or(flag);
                assert!(
                    text.contains(flag),
                    "`{command}`: `tracehop {subcommand}` has no {flag}"
                );
            }
            checked += 1;
        }
        for word in command.split_whitespace() {
            let word = word.trim_matches(|c| c == '`' || c == '"' || c == '\'');
            let word = word.split_once('=').map_or(word, |(_, value)| value);
            let ours = [
                "bench/",
                "scripts/",
                "k8s/",
                "src/",
                "tests/",
                "dashboards/",
            ]
            .iter()
            .any(|dir| word.starts_with(dir))
                || word == "config.example.yaml";
            if ours {
                assert!(
                    root.join(word).exists(),
                    "`{command}` names {word}, which does not exist"
                );
            }
        }
    }
    assert!(checked >= 3, "no tracehop commands found in {commands:?}");
}

#[test]
fn commands_are_extracted_whole() {
    let text = "```sh\ncargo run --release -- run --listen a \\\n    --upstream b   # note\n# comment\nls\n```\n";
    assert_eq!(
        shell_commands(text),
        [
            "cargo run --release -- run --listen a     --upstream b",
            "ls"
        ]
    );
    assert_eq!(
        tracehop_args("cargo run --release -- collector --listen x &"),
        Some(vec!["collector", "--listen", "x"])
    );
}
