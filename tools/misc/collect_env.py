"""Print the environment summary for bug reports (the same as
``python -m mmdcls.utils.collect_env``)."""
from mmdcls.utils.collect_env import main

if __name__ == '__main__':
    main()
