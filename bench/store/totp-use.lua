-- wrk script: TOTP step use, POST /v1/users/<user>/factors/<id>/totp/use, the
-- single-use write behind every accepted code. Run with one connection per
-- thread (-t N -c N): thread i uses user u<i> and its factor, with steps
-- that only grow, so every request is a real (200) use. Arguments: TOKEN ID1 ID2 ...
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
local token, path, step
function init(args)
  token = args[1]
  path = "/v1/users/u" .. tid .. "/factors/" .. args[tid + 1] .. "/totp/use"
  step = 1000
end
function request()
  step = step + 1
  return wrk.format("POST", path,
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" },
    '{"step":' .. step .. '}')
end
