from fuzzyemo.cli import main

main()
