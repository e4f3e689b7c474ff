from rsg_operator.cli import main

main()
