//! A real browser: headless Chromium over WebDriver (chromedriver). It opens the overview, follows a run to its
//! migrations, redrives a dead letter and sees the queue's counts change, and saves a screenshot of each page under
//! `target/console-screenshots/` (checked to be not blank). Chromium is installed by `.ci/run`: under `CI=true` a
//! missing browser fails the test; elsewhere it is reported and the test returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::{fixture, serve, test_options};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// Wait (up to 20 s) until the browser shows a page whose path ends with `suffix`: after a click, the old page
/// stays current until the new one has loaded.
async fn wait_for_path(browser: &Client, suffix: &str) {
    let start = Instant::now();
    loop {
        let url = browser.current_url().await.expect("the current URL");
        if url.path().ends_with(suffix) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still on {url}, waiting for …{suffix}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Save a screenshot of the current page and check it shows something: many colours, and not mostly one.
async fn shot(browser: &Client, name: &str) {
    let png_bytes = browser.screenshot().await.expect("a screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("{name}.png")), &png_bytes).expect("save");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let mut colours: Vec<&[u8]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    let first = pixels[0];
    let same = pixels.iter().filter(|p| **p == first).count();
    assert!(
        colours.len() > 50,
        "{name}.png has {} colours: blank?",
        colours.len()
    );
    assert!(
        same * 100 / pixels.len() < 95,
        "{name}.png is {}% one colour: blank?",
        same * 100 / pixels.len()
    );
}

async fn wait_for_port(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, waiting (up to 20 s) for the page to show one: a click starts a
/// navigation that the next command does not wait for.
async fn text(browser: &Client, css: &str) -> String {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(e) => e.text().await.expect("text"),
        Err(e) => panic!("{css}: {e}\n{}", browser.source().await.unwrap_or_default()),
    }
}

#[tokio::test]
async fn a_browser_follows_a_run_and_redrives_a_dead_letter() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} missing: .ci/run installs Debian's chromium and chromium-driver",
            missing.join(" and ")
        );
        eprintln!(
            "skipped outside CI: {} missing (apt-get install chromium chromium-driver)",
            missing.join(" and ")
        );
        return;
    }
    let f = fixture().await;
    let opts = pgstrata_console::ConsoleOptions {
        page_size: 50,
        ..test_options()
    };
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&f.db.url()).expect("url"),
        Some(f.app.clone()),
        opts,
    )
    .await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let mut driver = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    wait_for_port(port).await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1"]
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    let base = format!("http://{}", s.addr);

    let result = async {
        // The overview, once the first inspection is in.
        let start = Instant::now();
        loop {
            browser.goto(&format!("{base}/")).await.expect("overview");
            if browser
                .source()
                .await
                .expect("source")
                .contains("Inspected at")
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no inspection on the overview"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(text(&browser, "h1").await, "Overview");
        shot(&browser, "overview").await;

        // Follow a run to its migrations.
        browser
            .find(Locator::Css(&format!("a[href='/runs/{}']", f.app_run)))
            .await
            .expect("the run's link")
            .click()
            .await
            .expect("click");
        wait_for_path(&browser, &format!("/runs/{}", f.app_run)).await;
        assert_eq!(text(&browser, "h1").await, format!("Run #{}", f.app_run));
        assert!(
            text(&browser, "article.migration h3")
                .await
                .contains("001_users")
        );
        assert_eq!(
            text(&browser, ".sql .kw").await,
            "CREATE",
            "highlighted SQL"
        );
        shot(&browser, "run").await;

        browser.goto(&format!("{base}/runs")).await.expect("runs");
        shot(&browser, "runs").await;
        browser.goto(&format!("{base}/plan")).await.expect("plan");
        assert!(
            browser
                .source()
                .await
                .expect("source")
                .contains("002_broken")
        );
        shot(&browser, "plan").await;

        // Queues: let the sampler draw a few points, then redrive the dead letters of `mail` through the form.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        browser
            .goto(&format!("{base}/queues"))
            .await
            .expect("queues");
        shot(&browser, "queues").await;
        browser
            .find(Locator::LinkText("mail"))
            .await
            .expect("mail")
            .click()
            .await
            .expect("click");
        wait_for_path(&browser, "/queues/mail").await;
        assert_eq!(text(&browser, "dd.dead").await, "2");
        shot(&browser, "queue").await;
        browser
            .find(Locator::Css("form.inline button.primary"))
            .await
            .expect("the redrive-all button")
            .click()
            .await
            .expect("click");
        assert!(
            text(&browser, "p.question")
                .await
                .starts_with("Redrive all 2 dead message(s)")
        );
        browser
            .find(Locator::Id("confirm"))
            .await
            .expect("confirm")
            .click()
            .await
            .expect("click");
        assert!(
            text(&browser, "p.flash")
                .await
                .contains("2 message(s) changed")
        );
        assert_eq!(text(&browser, "dd.dead").await, "0", "the counts changed");
        shot(&browser, "queue-redriven").await;

        browser
            .goto(&format!("{base}/streams/orders"))
            .await
            .expect("stream");
        assert_eq!(text(&browser, "h1").await, "Stream orders");
        shot(&browser, "stream").await;
    }
    .await;
    let _ = browser.close().await;
    let _ = driver.kill().await;
    result
}
