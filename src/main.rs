fn main() -> std::process::ExitCode {
    peerconf::app::main()
}
