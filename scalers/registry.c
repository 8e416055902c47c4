/*
 * registry.c: every scaler type, in one alphabetical NULL-terminated array
 * (tmux's cmd_table[] in cmd.c is the model).  A new backend is one file in
 * scalers/ plus one line here; grep finds them all.
 */
#include <stddef.h>
#include <string.h>

#include "agentscaler/rt/common.h"
#include "agentscaler/scalers/scaler.h"

static const struct scaler_type *const scaler_types[] = {
	&scaler_type_rabbitmq,
	&scaler_type_redis_list,
	&scaler_type_redis_stream,
	NULL
};

const struct scaler_type *
scaler_type_find(const char *name)
{
	size_t	 i;

	if (name == NULL)
		return (NULL);
	for (i = 0; scaler_types[i] != NULL; i++) {
		if (strcmp(scaler_types[i]->name, name) == 0)
			return (scaler_types[i]);
	}
	return (NULL);
}

const char *
scaler_type_names(void)
{
	static char	 names[256];
	size_t		 i, len = 0;

	if (names[0] != '\0')
		return (names);
	for (i = 0; scaler_types[i] != NULL; i++) {
		if (len > 0)
			len += as_strlcpy(names + len, ", ",
			    sizeof names - len);
		if (len >= sizeof names)
			break;
		len += as_strlcpy(names + len, scaler_types[i]->name,
		    sizeof names - len);
		if (len >= sizeof names)
			break;
	}
	return (names);
}
