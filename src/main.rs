//! The `squall` command line: see DESIGN.md for the subcommands.

fn main() {
    println!("squall: being built");
}
