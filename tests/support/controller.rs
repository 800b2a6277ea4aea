//! Runs `keelson run` as a user would (the real binary, a real port on 127.0.0.1) and talks to
//! it over HTTP with curl. The process is killed when the handle is dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::TestEnv;

pub struct RunningController {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl RunningController {
    /// Starts `keelson run ARGS --listen 127.0.0.1:<free port> -v` with `envs` and waits until
    /// `/readyz` answers 200.
    pub fn start(env: &TestEnv, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_with_kubeconfig(&env.kubeconfig, args, envs)
    }

    pub fn start_with_kubeconfig(kubeconfig: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "keelson-run-{}-{port}-{}.log",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let file = std::fs::File::create(&log).expect("controller log file");
        let err = file.try_clone().expect("controller log file");
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_keelson"));
        command
            .arg("run")
            .args(args)
            .args(["--listen", &listen, "-vv"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KEELSON_WEBHOOK_TOKEN")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        for (name, value) in envs {
            command.env(name, value);
        }
        let child = command.spawn().expect("start keelson run");
        let mut running = Self {
            child: Some(child),
            port,
            log,
        };
        let limit = Duration::from_secs(60);
        let start = Instant::now();
        loop {
            if running.get("/readyz").0 == 200 {
                break;
            }
            if let Some(status) = running
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "keelson run exited ({status}) before it was ready:\n{}",
                    running.log_text()
                );
            }
            if start.elapsed() > limit {
                panic!(
                    "keelson run was not ready within {limit:?}:\n{}",
                    running.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        running
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn curl(&self, args: &[&str], body: Option<&str>) -> (u16, String) {
        curl(args, body)
    }
}

/// POSTs `body` to a controller's port from any thread.
pub fn post_to(port: u16, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "@-",
    ];
    for header in headers {
        args.push("-H");
        args.push(header);
    }
    args.push(&url);
    curl(&args, Some(body))
}

/// curl with the answer's status code after the body; the request body goes through stdin.
fn curl(args: &[&str], body: Option<&str>) -> (u16, String) {
    {
        use std::io::Write;
        let mut child = Command::new("curl")
            .args(["-s", "-m", "30", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run curl (Debian's curl is installed by scripts/install-prereqs)");
        if let (Some(body), Some(mut stdin)) = (body, child.stdin.take()) {
            // The body goes through stdin: a large one would not fit on a command line.
            let _ = stdin.write_all(body.as_bytes());
        }
        let out = child.wait_with_output().expect("curl output");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl RunningController {
    /// GET with extra `headers` (`Name: value`).
    pub fn get_with(&self, path: &str, headers: &[&str]) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut args: Vec<&str> = Vec::new();
        for header in headers {
            args.push("-H");
            args.push(header);
        }
        args.push(&url);
        curl(&args, None)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[&format!("http://127.0.0.1:{}{path}", self.port)], None)
    }

    /// POSTs `body` with extra `headers` (`Name: value`).
    pub fn post(&self, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut args = vec![
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ];
        for header in headers {
            args.push("-H");
            args.push(header);
        }
        args.push(&url);
        self.curl(&args, Some(body))
    }

    /// The value of one metric series in `/metrics` (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// SIGTERM, then waits up to `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("controller still running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "keelson run did not exit within {limit:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (kill -9): no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        self.kill();
    }
}
