from oscar_stream.cli.main import main

main()
