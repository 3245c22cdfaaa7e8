//! `float_repr` against Python's own `repr(float)` on random doubles and widened float32s.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use larder_online::pyrepr::float_repr;

#[test]
fn float_repr_equals_python_repr() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut values = Vec::new();
    while values.len() < 30_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for x in [
            f64::from_bits(seed),
            f32::from_bits(seed as u32) as f64,
            (seed % 10_000_000) as f64 / 10f64.powi((seed % 30) as i32 - 8),
        ] {
            if x.is_finite() {
                values.push(x);
            }
        }
    }
    let mut child = Command::new("python3")
        .args(["-c", "import sys,struct\nfor l in sys.stdin: print(repr(struct.unpack('<d', bytes.fromhex(l.strip()))[0]))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let input: String = values
        .iter()
        .map(|x| format!("{}\n", hex(&x.to_le_bytes())))
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let python = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = python.lines().collect();
    assert_eq!(lines.len(), values.len());
    for (x, want) in values.iter().zip(lines) {
        assert_eq!(float_repr(*x), want, "bits {:016x}", x.to_bits());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
