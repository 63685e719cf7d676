from dockd.cli import main

main()
