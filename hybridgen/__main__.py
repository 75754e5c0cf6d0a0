from hybridgen.cli import main

main()
