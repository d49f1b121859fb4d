-- wrk script: the factor lookup the filter makes at every second-factor step,
-- GET /v1/users/<user>/factors?ip=<client> (factors with secrets + active bans),
-- round robin over USERS users. Arguments: TOKEN USERS.
local token, users, n
function init(args)
  token = args[1]
  users = tonumber(args[2])
  n = 0
end
function request()
  n = n + 1
  return wrk.format("GET", "/v1/users/u" .. (n % users + 1) .. "/factors?ip=198.51.100.7",
    { ["Authorization"] = "Bearer " .. token })
end
