#include <libyang/libyang.h>
