from xvckit.cli import main

main()
