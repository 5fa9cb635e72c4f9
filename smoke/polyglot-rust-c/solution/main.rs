/* /* */
#if 0
*/
// Rust nests block comments and C++ does not: the first line leaves Rust inside a
// comment that hides `#if 0`, while C++ sees `#if 0` and skips the Rust code below.
fn main() {
    let n: u64 = std::env::args().nth(1).expect("usage: main N").parse().expect("N");
    let (mut a, mut b) = (1u64, 1u64);
    for _ in 0..n {
        let t = a + b;
        a = b;
        b = t;
    }
    println!("{}", a);
}
/* /* */
#endif
#include <cstdio>
#include <cstdlib>
int main(int argc, char **argv) {
    if (argc < 2) return 1;
    unsigned long long n = strtoull(argv[1], 0, 10), a = 1, b = 1;
    for (unsigned long long i = 0; i < n; i++) {
        unsigned long long t = a + b;
        a = b;
        b = t;
    }
    printf("%llu\n", a);
    return 0;
}
// */
