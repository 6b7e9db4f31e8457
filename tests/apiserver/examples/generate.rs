//! Writes a generated cluster as a kubectl List on stdout, for `check` by hand:
//! `cargo run --release -p test-apiserver --example generate -- 65000 > nodes.json`.

use std::io::Write;

fn main() -> std::io::Result<()> {
    let nodes = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    test_apiserver::generate::ClusterShape::new(nodes).write_list(&mut out)?;
    out.flush()
}
